"""A webhook receiver for trying webhooks on one machine: an HTTP/1.1 server on 127.0.0.1 that verifies every
delivery's signature with the reference `standardwebhooks` library, prints it, and answers 200.

    .venv/bin/python -m starter.dev.webhook_receiver --port 9000 --secret whsec_…

(README "Events and webhooks"). Stop it (Ctrl-C) to see the retries in the portal; start it again and the next
attempt lands. The tests use the same class: `answer` decides each reply's status (a test turns a receiver from
500 to 200, or to 410), `hold` keeps a request waiting mid-delivery, and `stop()` / `start()` take it off its port
and put it back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    """The signature verified under one of the receiver's secrets."""

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    answer: Callable[[Received], int] = lambda _: 200
    on_receive: Callable[[Received], None] | None = None
    hold: asyncio.Event | None = None
    """While set to an unset Event, requests wait before being answered (a delivery caught mid-flight)."""
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified]

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.verified()]

    def _verify(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            got = Received(headers=headers, body=body, verified=self._verify(headers, body))
            self.received.append(got)
            if self.on_receive is not None:
                self.on_receive(got)
            if self.hold is not None:
                await self.hold.wait()
            status = self.answer(got)
            reply = b'{"ok": true}' if status < 300 else b'{"error": "not now"}'
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(reply)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _line(got: Received) -> str:
    mark = "verified" if got.verified else "NOT VERIFIED"
    event = got.event if got.body[:1] == b"{" else {}
    return f"{mark}  {got.headers.get('webhook-id', '?')}  {event.get('type', '?')}  {event.get('id', '?')}"


async def _serve(port: int, secret: str) -> None:
    receiver = Receiver(secrets=[secret] if secret else [], port=port)
    receiver.on_receive = lambda got: print(_line(got), flush=True)
    await receiver.start()
    print(f"Receiving webhooks on {receiver.url} (Ctrl-C stops)", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description="A local webhook receiver that verifies Standard Webhooks signatures")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET", ""),
        help="the endpoint's whsec_… secret (or WEBHOOK_SECRET in the environment)",
    )
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(arguments.port, arguments.secret))
