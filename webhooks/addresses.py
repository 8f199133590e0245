"""Which IP addresses a webhook may be delivered to: public ones only.

A webhook URL is chosen by a customer, and the POST is made from inside our network. Without this check anyone who
can register an endpoint could make us reach the cloud metadata service (169.254.169.254, fd00:ec2::254,
100.100.100.200), the database on 10.x, or an admin port on 127.0.0.1, and read the first KiB of the answer back
from the delivery log: server-side request forgery.

The rule is an allow-list, not a deny-list: an address is allowed only when `ipaddress` says it is globally
reachable (`is_global`, which follows the IANA special-purpose address registries), after unwrapping the IPv6
forms that carry an IPv4 address inside them. A deny-list of "private ranges" always misses one (CGNAT, benchmarking,
6to4 of 127.0.0.1, …); an allow-list fails closed. Because Python 3.11's tables predate a few registry entries (and
count multicast as "global"), a handful of ranges are refused explicitly on top.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, named in the refusal so an operator reading the delivery log sees what was attempted.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (older)
    )
)

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT: someone's internal network

# Not globally reachable per IANA, but Python 3.11's `is_global` does not know it yet (or gets it wrong).
_NOT_GLOBAL_EXTRA: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments (3.11 only lists parts of it)
    ipaddress.ip_network("::/96"),  # IPv4-compatible IPv6 (deprecated); ::7f00:1 is 127.0.0.1 in disguise
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.ip_network("100::/64"),  # discard-only
    ipaddress.ip_network("2001:db8::/32"),  # documentation
    ipaddress.ip_network("3fff::/20"),  # documentation (RFC 9637)
    ipaddress.ip_network("5f00::/16"),  # SRv6 SIDs
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are the IPv4 target


def parse(text: str) -> IPAddress | None:
    """`text` as an IP address, or None when it is a hostname. IPv6 zone ids (fe80::1%eth0) are accepted."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to `ip` really goes to, for the IPv6 forms that embed one.

    ::ffff:a.b.c.d (IPv4-mapped) is connected to as a.b.c.d by a dual-stack socket; 6to4 (2002::/16) and the NAT64
    prefix are routed by a gateway to the embedded address. Teredo (2001::/32) is not unwrapped: it lies in
    2001::/23, which is not global anyway.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def problem(ip: IPAddress) -> str | None:
    """Why a webhook may not be sent to `ip` ("10.0.0.5 is a private address"), or None when it is public."""
    shown = str(ip)
    target: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = _reason(inner)
            return None if reason is None else f"{shown} is {reason} (it reaches {inner})"
        if ip.scope_id is not None:
            target = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    reason = _reason(target)
    return None if reason is None else f"{shown} is {reason}"


def is_allowed(ip: IPAddress) -> bool:
    """Whether a webhook may be sent to `ip`."""
    return problem(ip) is None


def _reason(ip: IPAddress) -> str | None:
    """The kind of non-public address `ip` is, as a noun phrase, or None when it is public.

    The specific kinds come first so the message is useful; the last test is the allow-list itself.
    """
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if any(ip in net for net in _NOT_GLOBAL_EXTRA):
        return "not a public address"
    if not ip.is_global:
        return "not a public address"
    return None
