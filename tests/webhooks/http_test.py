"""One webhook attempt, against real receivers on real sockets: delivery, SSRF refusals, timeouts, redirects, TLS.

The receiver is a small asyncio HTTP/1.1 server written here, so that it can misbehave on purpose (never answer,
answer forever, redirect) and record exactly what arrived, including the TLS server name.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from webhooks import addresses
from webhooks.http import RESPONSE_LIMIT, USER_AGENT, post, resolve_problem, url_problem

# ---------------------------------------------------------------------------------------------------------------
# A real receiver


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 whose answer depends on the request path.

    /status/NNN answers NNN; /redirect answers 302 to /target; /hang never answers; /endless streams a body that
    never ends; /slow-body sends the status and a few bytes, then stalls; anything else answers 200 "ok".
    """

    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = self._sni
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            method, target, _version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, target, headers, body))
            await self._answer(target, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()

    async def _answer(self, target: str, writer: asyncio.StreamWriter) -> None:
        if target == "/hang":
            await self._stop.wait()
            return
        if target == "/endless":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            while not self._stop.is_set():
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()  # raises once the client hangs up
            return
        if target == "/slow-body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
            await writer.drain()
            await self._stop.wait()
            return
        status, extra, body = 200, "", b"ok"
        if target.startswith("/status/"):
            status = int(target.removeprefix("/status/"))
            body = f"status {status}".encode()
        elif target == "/redirect":
            status, extra = 302, f"Location: http://127.0.0.1:{self.port}/target?token=abc\r\n"
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode() + body
        )
        await writer.drain()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---------------------------------------------------------------------------------------------------------------
# Delivery


async def test_the_receiver_gets_the_exact_body_and_headers(receiver: Receiver) -> None:
    body = os.urandom(64) + '{"type": "enrollment.created", "name": "Zoë"}'.encode()
    headers = {
        "webhook-id": "msg_2b9f",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,c2lnbmF0dXJl",
        "content-type": "application/json",
    }
    result = await post(f"http://127.0.0.1:{receiver.port}/hooks?x=1", body, headers, allow_private=True)

    assert (result.status_code, result.response, result.error) == (200, "ok", None)
    assert result.delivered
    assert 0 <= result.duration_ms < 5000
    [got] = receiver.received
    assert (got.method, got.target, got.body) == ("POST", "/hooks?x=1", body)
    for name, value in headers.items():
        assert got.headers[name] == value
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["content-length"] == str(len(body))
    assert "cookie" not in got.headers


async def test_a_hostname_keeps_its_host_header_though_the_connection_goes_to_the_vetted_ip(
    receiver: Receiver,
) -> None:
    result = await post(f"http://localhost:{receiver.port}/", b"{}", {}, allow_private=True)

    assert result.status_code == 200, result.error
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"


@pytest.mark.parametrize("status", [410, 500, 400, 204])
async def test_error_statuses_come_back_as_status_codes(receiver: Receiver, status: int) -> None:
    result = await post(f"http://127.0.0.1:{receiver.port}/status/{status}", b"{}", {}, allow_private=True)

    assert result.status_code == status
    assert result.error is None
    assert result.delivered is (status == 204)
    assert result.response == ("" if status == 204 else f"status {status}")


async def test_a_redirect_is_an_answer_and_is_not_followed(receiver: Receiver) -> None:
    result = await post(f"http://127.0.0.1:{receiver.port}/redirect", b"{}", {}, allow_private=True)

    assert result.status_code == 302
    assert not result.delivered
    assert result.error == f"redirect not followed (302 to http://127.0.0.1:{receiver.port}/target)"
    assert [r.target for r in receiver.received] == ["/redirect"]  # the target got nothing


async def test_only_the_first_kib_of_an_endless_answer_is_read(receiver: Receiver) -> None:
    started = time.monotonic()
    result = await post(f"http://127.0.0.1:{receiver.port}/endless", b"{}", {}, allow_private=True, timeout=5)

    assert result.status_code == 200
    assert result.error is None
    assert result.response == "x" * RESPONSE_LIMIT
    assert time.monotonic() - started < 3  # it stopped reading; it did not wait for the deadline


async def test_a_receiver_that_never_answers_times_out_within_the_deadline(receiver: Receiver) -> None:
    started = time.monotonic()
    result = await post(f"http://127.0.0.1:{receiver.port}/hang", b"{}", {}, allow_private=True, timeout=1)
    elapsed = time.monotonic() - started

    assert result.status_code is None
    assert result.error == "timed out after 1 s"
    assert 0.9 <= elapsed < 2.5
    assert 900 <= result.duration_ms < 2500
    assert len(receiver.received) == 1  # it was sent; no answer came


async def test_a_body_that_stalls_keeps_the_status_and_what_arrived(receiver: Receiver) -> None:
    result = await post(f"http://127.0.0.1:{receiver.port}/slow-body", b"{}", {}, allow_private=True, timeout=1)

    assert result.status_code == 200
    assert result.response == "first"
    assert result.error == "timed out after 1 s while reading the answer"


async def test_a_closed_port_is_connection_refused() -> None:
    result = await post(f"http://127.0.0.1:{free_port()}/", b"{}", {}, allow_private=True, timeout=5)

    assert (result.status_code, result.response, result.error) == (None, None, "connection refused")


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"])
async def test_proxies_from_the_environment_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A proxy would resolve the name itself, after our check: the attempt must go straight to the vetted IP."""
    monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    result = await post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, allow_private=True)

    assert (result.status_code, result.error) == (200, None)


async def test_an_unknown_name_is_reported_not_raised() -> None:
    result = await post("https://no-such-host.invalid/", b"{}", {}, allow_private=True, timeout=5)

    assert result.status_code is None
    assert result.error == "could not resolve no-such-host.invalid"  # a failed attempt, to retry; not a refusal


async def test_the_lenient_decoding_of_a_cut_multibyte_character(receiver: Receiver) -> None:
    """A body is cut at 1024 bytes, which may split a UTF-8 character: it is replaced, not an error."""
    big = Receiver()
    body = "a" * (RESPONSE_LIMIT - 1) + "é" * 10

    async def answer(target: str, writer: asyncio.StreamWriter) -> None:
        data = body.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
        await writer.drain()

    big._answer = answer  # type: ignore[method-assign]
    await big.start()
    try:
        result = await post(f"http://127.0.0.1:{big.port}/", b"{}", {}, allow_private=True)
    finally:
        await big.stop()

    assert result.response == "a" * (RESPONSE_LIMIT - 1) + "\ufffd"


# ---------------------------------------------------------------------------------------------------------------
# SSRF: refused URLs and addresses

REFUSED_URLS = {
    "http://example.com/hook": "https",
    "ftp://example.com/hook": "https",
    "/hooks": "absolute",
    "example.com/hooks": "",
    "https://user:secret@example.com/": "user name or password",
    "https://example.com:0/": "port 0 is out of range",
    "https://example.com:70000/": "out of range",
    "https://example.com/" + "a" * 2000: "longer than 2000",
    "https://127.0.0.1/": "127.0.0.1 is a loopback address",
    "https://127.8.9.10:8443/": "loopback",
    "https://[::1]/": "::1 is a loopback address",
    "https://[::ffff:127.0.0.1]/": "loopback address (it reaches 127.0.0.1)",
    "https://[::7f00:1]/": "is a reserved address",
    "https://[2002:7f00:1::]/": "loopback address (it reaches 127.0.0.1)",
    "https://[64:ff9b::a9fe:a9fe]/": "cloud metadata address (it reaches 169.254.169.254)",
    "https://169.254.169.254/latest/meta-data/": "169.254.169.254 is a cloud metadata address",
    "https://169.254.1.1/": "link-local",
    "https://[fe80::1]/": "link-local",
    "https://[fd00:ec2::254]/": "cloud metadata address",
    "https://100.100.100.200/": "cloud metadata address",
    "https://10.1.2.3/": "10.1.2.3 is a private address",
    "https://172.16.5.4/": "private address",
    "https://192.168.0.1/": "private address",
    "https://[fc00::1]/": "private address",
    "https://100.64.0.1/": "100.64.0.1 is a shared (carrier-grade NAT) address",
    "https://0.0.0.0/": "0.0.0.0 is an unspecified address",
    "https://[::]/": "unspecified address",
    "https://224.0.0.1/": "multicast",
    "https://255.255.255.255/": "reserved",
    "https://2130706433/": "127.0.0.1 is a loopback address",  # getaddrinfo reads these as 127.0.0.1
    "https://0x7f.1/": "127.0.0.1 is a loopback address",
    "https://127.1/": "127.0.0.1 is a loopback address",
}


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS.items())
def test_url_problem_refuses(url: str, reason: str) -> None:
    problem = url_problem(url, allow_private=False)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://hooks.example.com:8443/a/b?c=d",
        "https://8.8.8.8/",
        "https://[2606:4700:4700::1111]/",
        "https://bücher.example/hook",
        "https://localhost/",  # a name: refused by resolve_problem and post, not here (no I/O)
    ],
)
def test_url_problem_accepts(url: str) -> None:
    assert url_problem(url, allow_private=False) is None


def test_allow_private_lifts_the_address_rules_and_allows_http_but_not_the_shape_rules() -> None:
    for url in ["http://127.0.0.1:8000/", "https://10.1.2.3/", "http://localhost/", "https://[::1]/"]:
        assert url_problem(url, allow_private=True) is None
    for url in ["ftp://127.0.0.1/", "https://u:p@127.0.0.1/", "http://127.0.0.1:0/"]:
        assert url_problem(url, allow_private=True) is not None


async def test_resolve_problem_refuses_a_name_that_resolves_to_loopback() -> None:
    assert await resolve_problem("https://localhost/", allow_private=False) == (
        "127.0.0.1 is a loopback address (resolved from localhost)"
    )
    assert await resolve_problem("https://localhost/", allow_private=True) is None
    assert await resolve_problem("https://no-such-host.invalid/", allow_private=True) == (
        "could not resolve no-such-host.invalid"
    )
    assert await resolve_problem("http://example.com/", allow_private=False) == "the URL must use https"


@pytest.mark.parametrize("url", list(REFUSED_URLS))
async def test_post_refuses_without_connecting(url: str) -> None:
    result = await post(url, b"{}", {}, allow_private=False)

    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("refused: ")


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_post_refuses_at_connect_time_a_name_that_resolves_to_loopback(receiver: Receiver, scheme: str) -> None:
    """The URL passes the registration check (it is a name), but the name points at us: no connection is made.

    This is the DNS-rebinding case: whatever the name resolved to at registration, each attempt resolves it again
    and checks every address before connecting.
    """
    url = f"{scheme}://localhost:{receiver.port}/hooks"
    if scheme == "https":
        assert url_problem(url, allow_private=False) is None

    result = await post(url, b"{}", {}, allow_private=False)

    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("refused: ")
    assert receiver.connections == 0
    assert receiver.received == []


async def test_post_refuses_a_literal_private_address_without_connecting(receiver: Receiver) -> None:
    result = await post(f"https://127.0.0.1:{receiver.port}/", b"{}", {}, allow_private=False)

    assert result.error == "refused: 127.0.0.1 is a loopback address"
    assert receiver.connections == 0


# ---------------------------------------------------------------------------------------------------------------
# TLS: connecting to the vetted IP still checks the certificate against the URL's name


@dataclass(frozen=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, directory: Path) -> ssl.SSLContext:
        cert, key = directory / "cert.pem", directory / "key.pem"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem.decode())


def self_signed(name: str) -> Certificate:
    """A self-signed server certificate for `name` alone (no IP address in it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@pytest_asyncio.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[Receiver, Certificate]]:
    certificate = self_signed("localhost")
    r = Receiver(tls=certificate.server_context(tmp_path))
    await r.start()
    yield r, certificate
    await r.stop()


async def test_https_to_a_name_verifies_the_certificate_for_that_name(
    tls_receiver: tuple[Receiver, Certificate],
) -> None:
    receiver, certificate = tls_receiver

    result = await post(
        f"https://localhost:{receiver.port}/hooks",
        b'{"ok": true}',
        {"webhook-id": "msg_1"},
        allow_private=True,
        verify=certificate.client_context(),
    )

    assert (result.status_code, result.error) == (200, None)
    assert receiver.server_names == ["localhost"]  # SNI is the name, not the IP we connected to
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"
    assert receiver.received[0].body == b'{"ok": true}'


async def test_https_to_the_ip_fails_because_the_certificate_is_for_the_name(
    tls_receiver: tuple[Receiver, Certificate],
) -> None:
    receiver, certificate = tls_receiver

    result = await post(
        f"https://127.0.0.1:{receiver.port}/",
        b"{}",
        {},
        allow_private=True,
        verify=certificate.client_context(),
    )

    assert result.status_code is None
    assert result.error == "TLS certificate not valid for 127.0.0.1"
    assert receiver.received == []


async def test_https_fails_when_the_certificate_is_for_another_name(tmp_path: Path) -> None:
    """The server proves it is receiver.example, but we asked for localhost: the name check must fail."""
    other = self_signed("receiver.example")
    receiver = Receiver(tls=other.server_context(tmp_path))
    await receiver.start()
    try:
        result = await post(
            f"https://localhost:{receiver.port}/", b"{}", {}, allow_private=True, verify=other.client_context()
        )
    finally:
        await receiver.stop()

    assert result.status_code is None
    assert result.error == "TLS certificate not valid for localhost"
    assert receiver.received == []


async def test_https_with_the_default_trust_store_refuses_a_self_signed_certificate(
    tls_receiver: tuple[Receiver, Certificate],
) -> None:
    receiver, _ = tls_receiver

    result = await post(f"https://localhost:{receiver.port}/", b"{}", {}, allow_private=True)

    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("TLS certificate for localhost not trusted")
    assert receiver.received == []


async def test_a_context_that_skips_the_hostname_check_is_a_programming_error() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    with pytest.raises(ValueError, match="check hostnames"):
        await post("https://example.com/", b"{}", {}, allow_private=False, verify=lax)
    with pytest.raises(ValueError, match="allow_private"):
        await post("https://example.com/", b"{}", {}, allow_private=False, verify=False)


# ---------------------------------------------------------------------------------------------------------------
# The address classifier, as properties

FORBIDDEN_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
FORBIDDEN_V6 = ["::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7"]
FORBIDDEN_V6 += ["fe80::/10", "ff00::/8", "3fff::/20", "5f00::/16"]


def in_networks(networks: list[str], version: Literal[4, 6]) -> st.SearchStrategy[addresses.IPAddress]:
    return st.sampled_from(networks).flatmap(lambda net: st.ip_addresses(v=version, network=net))


def mapped(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"::ffff:{v4}")


def six_to_four(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)


def nat64(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))


@given(in_networks(FORBIDDEN_V4, 4) | in_networks(FORBIDDEN_V6, 6))
def test_every_address_in_a_non_public_network_is_refused(ip: addresses.IPAddress) -> None:
    assert addresses.problem(ip) is not None
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    assert url_problem(f"https://{host}/", allow_private=False) is not None
    assert url_problem(f"https://{host}/", allow_private=True) is None


@given(in_networks(FORBIDDEN_V4, 4))
def test_a_forbidden_ipv4_address_wrapped_in_ipv6_is_still_refused(v4: ipaddress.IPv4Address) -> None:
    for wrapped in (mapped(v4), six_to_four(v4), nat64(v4)):
        assert addresses.problem(wrapped) is not None, wrapped


@given(st.ip_addresses(v=4))
def test_wrapping_an_ipv4_address_never_changes_the_verdict(v4: ipaddress.IPv4Address) -> None:
    verdict = addresses.is_allowed(v4)
    assert addresses.is_allowed(mapped(v4)) is verdict
    assert addresses.is_allowed(six_to_four(v4)) is verdict
    assert addresses.is_allowed(nat64(v4)) is verdict


@given(st.ip_addresses())
def test_nothing_outside_is_global_is_ever_allowed(ip: addresses.IPAddress) -> None:
    if addresses.is_allowed(ip) and not (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped):
        assert ip.is_global
        assert not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


@pytest.mark.parametrize(
    "text",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"],
)
def test_public_addresses_are_allowed(text: str) -> None:
    ip = addresses.parse(text)
    assert ip is not None
    assert addresses.problem(ip) is None
