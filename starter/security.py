"""What every request passes through, as one ASGI middleware: security headers on every response, a cap on
request bodies (413), JSON only for the API's bodies (422), and the source address for the audit trail.

One kind of request is let through larger, and as a multipart form: a manufacturer's PSKC upload
(`POST /api/accounts/{id}/credential-batches`, and the portal's `POST /accounts/{id}/credential-batches`), up to
`upload_max_body` (ENROLL_PSKC_MAX_BYTES and the form's own overhead). Over it, the answer is the upload's own 422
on `file`, as the service answers a file over ENROLL_PSKC_MAX_BYTES.

The headers are decided here alone, by path: every response gets HEADERS and, except the interactive API docs,
the strict CSP; the contact's form (`/enroll…`) sends no referrer; and pages (HTML, except the API docs and
the dev mailbox) are never stored by a cache, since they show who is signed in and the records they may see.

The source address is the peer of the connection; behind a reverse proxy, uvicorn puts the client's address
there from `X-Forwarded-For` when the proxy's own address is trusted (`FORWARDED_ALLOW_IPS`, default 127.0.0.1).
The audit trail records it whole; limits and lock-outs count by `source_network` instead, since whoever has one
IPv6 address has its whole /64 (2^64 addresses to rotate through).
"""

from __future__ import annotations

import ipaddress
import json
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 256 * 1024  # bytes; the largest legitimate body (a contact form) is a few kilobytes
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# The interactive API docs load Swagger UI's own scripts; everything else is held to the strict policy.
RELAXED_PATHS = ("/docs", "/redoc")
NO_REFERRER_PATHS = "/enroll"  # the contact's form; by prefix, the portal's /enrollments pages too
CACHED_PAGE_PATHS = (*RELAXED_PATHS, "/dev/")
JSON_PATHS = "/api/"
UPLOAD_PATHS = re.compile(r"^/(?:api/)?accounts/[^/]+/credential-batches/?$")
"""The PSKC uploads (POST): multipart, and up to `upload_max_body`."""
UPLOAD_OVERHEAD = 1024 * 1024
"""What an upload's multipart form may add to the file (boundaries, the other fields): `upload_max_body` is
ENROLL_PSKC_MAX_BYTES plus this."""
_source: ContextVar[str | None] = ContextVar("request_source", default=None)


def request_source() -> str | None:
    """The address the request being handled came from (None outside a request: the CLI, the worker)."""
    return _source.get()


def source_network(address: str | None) -> str | None:
    """What a limit or lock-out counts `address` as: an IPv4 address itself (also one mapped into IPv6), an IPv6
    address as its /64 (`2001:db8:1:2::/64`: one subscriber's network, which its owner can fill with addresses at
    will); anything that is not an address (a unix socket's name, "testclient") as it is."""
    if not address:
        return address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone (`fe80::1%eth0`)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def request_network() -> str | None:
    """`source_network` of the request being handled: the key of per-address limits and lock-outs."""
    return source_network(request_source())


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _is_form(content_type: bytes) -> bool:
    """A form (the upload answers one without a file with its own 422 on `file`)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media in (b"multipart/form-data", b"application/x-www-form-urlencoded")


def _is_page(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers)


NOT_JSON = "must be a JSON document sent with Content-Type: application/json"
SNS_PATH = "/api/mail-events/ses"
"""Amazon SNS posts its JSON messages as `text/plain; charset=UTF-8`, and cannot be told otherwise for a
subscription's confirmation: that one path takes text/plain too (its body is still parsed as JSON, and verified)."""


class BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY, upload_max_body: int | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.upload_max_body = upload_max_body if upload_max_body is not None else max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"")
        upload = scope.get("method") == "POST" and UPLOAD_PATHS.match(scope["path"]) is not None
        max_body = self.upload_max_body if upload else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            await self._too_large(send, upload)
            return
        has_body = (declared is not None and int(declared) > 0) or b"transfer-encoding" in headers
        json_path = scope["path"].startswith(JSON_PATHS)
        sns = scope["path"] == SNS_PATH and content_type.split(b";", 1)[0].strip().lower() == b"text/plain"
        if (
            json_path
            and has_body
            and not _is_json(content_type)
            and not (upload and _is_form(content_type))
            and not sns
        ):
            await self._refuse(send, 422, {"errors": [{"field": "body", "message": NOT_JSON}]})
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_body:
                    raise BodyTooLarge
            return message

        async def secured_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in {h for h, _ in HEADERS}]
                headers += HEADERS
                if not scope["path"].startswith(RELAXED_PATHS):
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-security-policy"]
                    headers.append((b"content-security-policy", CSP.encode()))
                if scope["path"].startswith(NO_REFERRER_PATHS):
                    headers = [(k, v) for k, v in headers if k.lower() != b"referrer-policy"]
                    headers.append((b"referrer-policy", b"no-referrer"))
                if _is_page(headers) and not scope["path"].startswith(CACHED_PAGE_PATHS):
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        client = scope.get("client")
        token = _source.set(str(client[0])[:64] if client else None)
        try:
            await self.app(scope, limited_receive, secured_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send, upload)
        finally:
            _source.reset(token)

    async def _too_large(self, send: Send, upload: bool = False) -> None:
        if upload:
            limit = max(self.upload_max_body - UPLOAD_OVERHEAD, 0)
            message = (
                f"is over the limit of {limit // 1024} KiB (ENROLL_PSKC_MAX_BYTES); split the batch into smaller files"
            )
            await self._refuse(send, 422, {"errors": [{"field": "file", "message": message}]})
            return
        await self._refuse(send, 413, {"detail": f"The request body is larger than {self.max_body // 1024} KiB."})

    async def _refuse(self, send: Send, status: int, content: dict[str, object]) -> None:
        body = json.dumps(content).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
