"""One webhook attempt over HTTP, made so that a customer's URL cannot point us at our own network.

Three places check the address, because each alone is not enough:

- `url_problem` at registration, without I/O: the URL's shape, and the host when it is a literal IP.
- `resolve_problem` at registration, with DNS: every address the name has today is public.
- `post` at every attempt: the name is resolved again, *every* address checked, and the connection is made to the
  vetted IP itself. A name that was public at registration may resolve to 127.0.0.1 tomorrow (DNS rebinding), and
  letting the HTTP client resolve the name a second time would give an attacker a window between our check and its
  connect. So the request goes to the IP, while the `Host` header, the TLS SNI and the certificate's hostname check
  all use the original name: to the receiver it is an ordinary request for its own host.

Only the first KiB of the answer is read (the delivery log keeps that much), no redirect is followed (a 3xx is
an answer, and not a success), no proxy or CA bundle is taken from the environment, and one overall deadline covers
DNS, connect, TLS, sending and reading. `ENROLL_WEBHOOKS_ALLOW_PRIVATE` (the `allow_private` argument) lifts the
address checks and allows plain http, for local receivers in development.

The address rules themselves are in `webhooks.addresses`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from webhooks import addresses

USER_AGENT = "enroll-webhooks/1"
RESPONSE_LIMIT = 1024  # bytes of the answer kept; the issue asks for "the first 1 KiB"
MAX_URL_LENGTH = 2000
DEFAULT_TIMEOUT = 15.0
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to. Only a 2xx `status_code` means delivered; a 3xx is an answer but not a success.

    `status_code` is None when no answer came, and then `error` says why. `error` can also be set beside a status
    code, when the answer was a redirect or its body was cut short; the status code is what counts.
    """

    status_code: int | None
    duration_ms: int
    response: str | None
    error: str | None

    @property
    def delivered(self) -> bool:
        """Whether the receiver accepted the event (Standard Webhooks: any 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class _Target:
    """A checked URL and the parts the connection needs."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host as written, no brackets: for DNS, SNI and the certificate check
    port: int  # effective port
    host_header: str  # what the receiver expects in `Host`: the name, and the port when it is not the default


class _Refused(Exception):
    """The URL or one of its addresses may not be used; the message is the reason."""


class _Unresolved(_Refused):
    """The name has no address now. Not a refusal of the URL: DNS failures are often transient, so `post`
    reports it as an ordinary failed attempt (to be retried), while registration still rejects it."""


def _target(url: str, *, allow_private: bool) -> _Target:
    """Parse and check `url` (no I/O), or raise `_Refused` with the reason.

    httpx's own parser is used so that the URL we check is exactly the URL httpx would request.
    """
    if len(url) > MAX_URL_LENGTH:
        raise _Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise _Refused(f"the URL is not valid ({exc})") from None
    if not parsed.is_absolute_url:
        raise _Refused("the URL must be absolute (https://…)")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and allow_private):
        raise _Refused("the URL must use https")
    if parsed.userinfo:
        raise _Refused("the URL must not contain a user name or password")
    try:
        host = parsed.raw_host.decode("ascii")
    except UnicodeDecodeError:
        raise _Refused("the URL's host is not valid") from None
    if not host:
        raise _Refused("the URL has no host")
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[parsed.scheme]
    if not 1 <= port <= 65535:
        raise _Refused(f"port {port} is out of range")
    if not allow_private:
        literal = _literal_ip(host)
        if literal is not None:
            reason = addresses.problem(literal)
            if reason is not None:
                raise _Refused(reason)
    shown = f"[{host}]" if ":" in host else host
    return _Target(
        url=parsed,
        host=host,
        port=port,
        host_header=shown if parsed.port is None else f"{shown}:{port}",
    )


def _literal_ip(host: str) -> addresses.IPAddress | None:
    """The IP `host` stands for when it is written as an address, including the legacy IPv4 spellings.

    `getaddrinfo` reads "2130706433", "0x7f.1" and "127.1" as 127.0.0.1, so they are addresses too, and are
    caught here without waiting for DNS.
    """
    ip = addresses.parse(host)
    if ip is not None:
        return ip
    if all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return addresses.parse(socket.inet_ntoa(socket.inet_aton(host)))
        except OSError:
            return None
    return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not be a webhook endpoint, or None. No I/O, so it can run on every registration and edit.

    Absolute, https (http only with `allow_private`), a host, no user:password@, a port in 1-65535, at most
    2000 characters; a host written as an IP must be public unless `allow_private`. A hostname passes here;
    `resolve_problem` and every `post` check where it points.
    """
    try:
        _target(url, allow_private=allow_private)
    except _Refused as exc:
        return str(exc)
    return None


async def _resolve(target: _Target) -> list[addresses.IPAddress]:
    """Every address `target.host` has now, in the resolver's preferred order, without duplicates."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise _Unresolved(f"could not resolve {target.host}") from None
    found: list[addresses.IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = addresses.parse(str(sockaddr[0]))
        if ip is not None and ip not in found:
            found.append(ip)
    if not found:
        raise _Unresolved(f"could not resolve {target.host}")
    return found


async def _vetted(target: _Target, *, allow_private: bool) -> list[addresses.IPAddress]:
    """The addresses to connect to, or `_Refused` when any of them is not public.

    One forbidden address refuses the whole name, rather than skipping it: a name that mixes a public and a
    private address is either a mistake or an attack, and the resolver may pick either one next time.
    """
    found = await _resolve(target)
    if not allow_private:
        for ip in found:
            reason = addresses.problem(ip)
            if reason is not None:
                raise _Refused(reason if str(ip) == target.host else f"{reason} (resolved from {target.host})")
    return found


async def resolve_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not be a webhook endpoint, checking DNS as well: the host resolves, and every address it
    resolves to is public (unless `allow_private`). For registration; `post` checks again at every attempt."""
    try:
        target = _target(url, allow_private=allow_private)
        await _vetted(target, allow_private=allow_private)
    except _Refused as exc:
        return str(exc)
    return None


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The certifi trust store, loaded once: building it per attempt costs more than a local delivery."""
    return httpx.create_ssl_context(verify=True, trust_env=False)


def _tls_setting(verify: ssl.SSLContext | bool, *, allow_private: bool) -> ssl.SSLContext | bool:
    """`verify` as httpx takes it, refusing settings that would quietly skip the hostname check.

    Connecting to an IP and checking the certificate against the name only protects anything if the check is
    on, so a context without `check_hostname` is a programming error. `verify=False` is for development only.
    """
    if verify is True:
        return _default_tls()
    if verify is False:
        if not allow_private:
            raise ValueError("verify=False is only allowed together with allow_private (development)")
        return False
    if not verify.check_hostname or verify.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("the SSL context must verify certificates and check hostnames")
    return verify


@dataclass
class _Progress:
    """How far an attempt got, so that a deadline hit while reading still reports the status code."""

    status_code: int | None = None
    location: str | None = None
    body: bytearray = field(default_factory=bytearray)

    def text(self) -> str | None:
        if self.status_code is None:
            return None
        return bytes(self.body[:RESPONSE_LIMIT]).decode("utf-8", errors="replace")


def _request_headers(headers: Mapping[str, str], target: _Target) -> httpx.Headers:
    """The caller's headers, plus what every attempt sends.

    `Host` is set to the original name because the URL requested is the IP. The answer is asked for uncompressed
    so that reading 1 KiB never means inflating a compression bomb.
    """
    out = httpx.Headers(dict(headers))
    out["Host"] = target.host_header
    out["Accept-Encoding"] = "identity"
    out.setdefault("User-Agent", USER_AGENT)
    out.setdefault("Content-Type", "application/json")
    return out


async def _send(
    client: httpx.AsyncClient,
    target: _Target,
    ip: addresses.IPAddress,
    body: bytes,
    headers: httpx.Headers,
    progress: _Progress,
) -> None:
    """POST to `ip` as if to `target.host`, and read at most `RESPONSE_LIMIT` bytes of the answer into `progress`."""
    pinned = target.url.copy_with(host=str(ip))
    async with client.stream(
        "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": target.host}
    ) as answer:
        progress.status_code = answer.status_code
        progress.location = answer.headers.get("location")
        async for chunk in answer.aiter_raw():
            progress.body += chunk
            if len(progress.body) >= RESPONSE_LIMIT:
                break  # closing the stream drops the connection; the rest is never downloaded


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it was raised from, including the members of exception groups (anyio's connect)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                todo.append(nxt)


def _is_tls(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) for e in _causes(exc))


def _describe(exc: BaseException, target: _Target) -> str:
    """One plain sentence for why no answer came. Never the URL (its query may hold a token), headers or body."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            message = cause.verify_message or "certificate verify failed"
            if "mismatch" in message.lower():
                return f"TLS certificate not valid for {target.host}"
            return f"TLS certificate for {target.host} not trusted ({message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {target.host} failed ({cause.reason or 'unknown reason'})"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the receiver"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable" if cause.errno == errno.EHOSTUNREACH else "network unreachable"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {target.host}"
    if isinstance(exc, httpx.WriteError):
        return "connection lost while sending the request"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver closed the connection without a valid HTTP answer"
    if isinstance(exc, httpx.ReadError):
        return "connection lost while reading the answer"
    return f"request failed ({type(exc).__name__})"


def _redirect_note(status_code: int, location: str | None) -> str | None:
    """The `error` for a 3xx: where it pointed (without its query), so the owner sees why nothing was delivered."""
    if not 300 <= status_code < 400:
        return None
    if not location:
        return f"redirect not followed ({status_code})"
    shown = location.split("?", 1)[0].split("#", 1)[0][:200]
    return f"redirect not followed ({status_code} to {shown})"


async def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    timeout: float = DEFAULT_TIMEOUT,
    verify: ssl.SSLContext | bool = True,
) -> AttemptResult:
    """POST `body` to `url` once, with the checks described in the module docstring.

    Never raises for anything the receiver or the network does: a refusal, a timeout or a broken connection comes
    back in `error`. (A bad `verify` argument is our bug and does raise `ValueError`.) When a name has several
    addresses they are tried in order while the connection itself fails; nothing has been sent at that point,
    so the retry cannot deliver twice.
    """
    (only,) = await post_batch(url, [(body, headers)], allow_private=allow_private, timeout=timeout, verify=verify)
    return only


async def post_batch(
    url: str,
    requests: Sequence[tuple[bytes, Mapping[str, str]]],
    *,
    allow_private: bool,
    timeout: float = DEFAULT_TIMEOUT,
    verify: ssl.SSLContext | bool = True,
    concurrency: int = 20,
) -> list[AttemptResult]:
    """POST each `(body, headers)` to `url`, at most `concurrency` at a time, each as `post` would: one result each,
    in order. The name is resolved and its addresses vetted once for the batch (every batch resolves again), and
    the requests share one client, so a batch of deliveries to one endpoint reuses its connections."""
    tls = _tls_setting(verify, allow_private=allow_private)
    started = time.monotonic()

    def refused_all(error: str) -> list[AttemptResult]:
        took = round((time.monotonic() - started) * 1000)
        return [AttemptResult(status_code=None, duration_ms=took, response=None, error=error) for _ in requests]

    try:
        target = _target(url, allow_private=allow_private)
    except _Refused as exc:
        return refused_all(f"refused: {exc}")
    try:
        async with asyncio.timeout(timeout):
            ips = await _vetted(target, allow_private=allow_private)
    except _Unresolved as exc:
        return refused_all(str(exc))
    except _Refused as exc:
        return refused_all(f"refused: {exc}")
    except (TimeoutError, OSError):
        return refused_all(f"timed out after {timeout:g} s")
    transport = httpx.AsyncHTTPTransport(
        verify=tls, trust_env=False, retries=0, limits=httpx.Limits(max_connections=concurrency)
    )
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout)
    ) as client:

        async def one(body: bytes, headers: Mapping[str, str]) -> AttemptResult:
            async with slots:
                return await _attempt(client, target, ips, body, headers, timeout)

        return list(await asyncio.gather(*(one(body, headers) for body, headers in requests)))


async def _attempt(
    client: httpx.AsyncClient,
    target: _Target,
    ips: Sequence[addresses.IPAddress],
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> AttemptResult:
    """One request of a batch, within its own `timeout`; never raises for the receiver's or the network's doing."""
    started = time.monotonic()
    progress = _Progress()

    def result(error: str | None) -> AttemptResult:
        return AttemptResult(
            status_code=progress.status_code,
            duration_ms=round((time.monotonic() - started) * 1000),
            response=progress.text(),
            error=error,
        )

    try:
        async with asyncio.timeout(timeout):
            request_headers = _request_headers(headers, target)
            for index, ip in enumerate(ips):
                try:
                    await _send(client, target, ip, body, request_headers, progress)
                    break
                except httpx.ConnectError as exc:
                    if _is_tls(exc) or index == len(ips) - 1:
                        raise
    except (TimeoutError, httpx.TimeoutException):
        phase = "" if progress.status_code is None else " while reading the answer"
        return result(f"timed out after {timeout:g} s{phase}")
    except (httpx.HTTPError, OSError) as exc:
        if progress.status_code is not None:
            return result(f"answer cut short: {_describe(exc, target)}")
        return result(_describe(exc, target))
    except Exception as exc:  # noqa: BLE001 - the delivery loop must record, not crash, whatever a receiver causes
        return result(f"request failed ({type(exc).__name__})")
    if progress.status_code is None:  # unreachable: the loop either sent the request or raised
        return result("no answer")
    return result(_redirect_note(progress.status_code, progress.location))
