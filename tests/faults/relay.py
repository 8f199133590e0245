"""A real SMTP relay (aiosmtpd) whose behaviour a test switches while it runs.

`Relay` listens on 127.0.0.1 (a free port) in aiosmtpd's own thread and event loop. A test switches it at any
time from its own loop or thread (every switch and every read takes one lock):

- `bounce(address, ...)`: those recipients are refused at RCPT with `550 5.1.1 User unknown` (until `unbounce`);
- `refuse_data()`: every message is refused at DATA with `554 5.7.1 Relay access denied`;
- `defer(at="RCPT" | "DATA")`: `451 4.3.0 Try again later` at that command;
- `stall(at="greeting" | "MAIL" | "RCPT" | "DATA")`: the connection is accepted and the relay does not answer
  at that point (every command before it is answered) until `release()`;
- `accept()` ends refusal, deferral and stall alike (bounced addresses stay unknown).

Otherwise every message is accepted and kept as an `Accepted` (envelope, subject, text body, Message-ID) in
`messages()`, and `attempts(address)` counts the RCPT commands naming each recipient, refused or not.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

BOUNCED = "550 5.1.1 User unknown"
RELAY_DENIED = "554 5.7.1 Relay access denied"
TRY_LATER = "451 4.3.0 Try again later"

Command = Literal["RCPT", "DATA"]
StallPoint = Literal["greeting", "MAIL", "RCPT", "DATA"]
FORM_LINK = re.compile(r"https?://[^/\s]+(/enroll/[A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Accepted:
    """One message the relay accepted (answered 250 at the end of DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    text: str
    message_id: str | None
    received_at: float
    """time.monotonic() when it was accepted."""

    @property
    def form_links(self) -> list[str]:
        """The paths (`/enroll/<token>`) of the form links in the text body, in order."""
        return FORM_LINK.findall(self.text)


@dataclass(frozen=True)
class Refusal:
    """One answer other than success: which command, for what, and the reply (a log for failure messages)."""

    command: str
    argument: str
    reply: str


def _parse(mail_from: str, rcpt_tos: list[str], raw: bytes) -> Accepted:
    message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    text = str(part.get_content()).replace("\r\n", "\n") if part is not None else ""
    found_id = message.get("Message-ID")
    return Accepted(
        mail_from=mail_from,
        rcpt_tos=tuple(rcpt_tos),
        subject=str(message.get("Subject", "")),
        text=text,
        message_id=str(found_id).strip() if found_id is not None else None,
        received_at=time.monotonic(),
    )


class _Handler:
    """aiosmtpd's hooks; every decision asks the relay (under its lock) at the moment the command arrives."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        await self.relay._hold("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        await self.relay._hold("RCPT")
        reply = self.relay._rcpt_reply(address)
        if reply is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return "250 OK"
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.relay._hold("DATA")
        return self.relay._data_reply(envelope)


class _SMTP(SMTP):
    """aiosmtpd's SMTP session, able to hold back its greeting while the relay stalls at "greeting"."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._relay = handler.relay

    async def _handle_client(self) -> None:
        await self._relay._hold("greeting")
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # With port 0, aiosmtpd probes `self.port`: make it the port the OS chose before it does.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class Relay:
    """The switchable SMTP relay on 127.0.0.1 (`port` once started). Thread-safe: see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._bounced: set[str] = set()
        self._data_refusal: str | None = None
        self._deferred_at: Command | None = None
        self._stall_at: StallPoint | None = None
        self._stalled_now = 0
        self._stalled_total = 0
        self._accepted: list[Accepted] = []
        self._attempts: Counter[str] = Counter()
        self._refusals: list[Refusal] = []
        self._controller: _Controller | None = None

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("the relay is already running")
        controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="faulty-relay",  # the default, getfqdn(), may wait on DNS
            ready_timeout=10,
        )
        controller.start()
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        self.accept()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- switches (any thread) ----------------------------------------------------------------------

    def bounce(self, *addresses: str) -> None:
        """Refuse these recipients at RCPT with 550 5.1.1 (a permanent bounce) until `unbounce`."""
        with self._lock:
            self._bounced.update(a.lower() for a in addresses)

    def unbounce(self, *addresses: str) -> None:
        with self._lock:
            self._bounced.difference_update(a.lower() for a in addresses)

    def refuse_data(self, reply: str = RELAY_DENIED) -> None:
        """Refuse every message at DATA with `reply` (by default 554 5.7.1) until `accept`."""
        with self._lock:
            self._data_refusal = reply

    def defer(self, at: Command = "RCPT") -> None:
        """Answer 451 4.3.0 at `at` until `accept`."""
        with self._lock:
            self._deferred_at = at

    def stall(self, at: StallPoint = "DATA") -> None:
        """Accept connections and answer every command before `at`, then answer nothing until `release`."""
        with self._lock:
            self._stall_at = at

    def release(self) -> None:
        """End a stall: the held sessions carry on (and see the relay's behaviour at that moment)."""
        with self._lock:
            self._stall_at = None

    def accept(self) -> None:
        """Back to accepting: no refusal at DATA, no 451, no stall (bounced addresses stay refused)."""
        with self._lock:
            self._data_refusal = None
            self._deferred_at = None
            self._stall_at = None

    # --- reads (any thread) -------------------------------------------------------------------------

    def messages(self) -> list[Accepted]:
        """Every accepted message, in the order accepted."""
        with self._lock:
            return list(self._accepted)

    def messages_to(self, address: str) -> list[Accepted]:
        wanted = address.lower()
        return [m for m in self.messages() if wanted in (r.lower() for r in m.rcpt_tos)]

    def attempts(self, address: str) -> int:
        """How many RCPT commands named `address`, whatever the relay answered."""
        with self._lock:
            return self._attempts[address.lower()]

    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals)

    @property
    def stalled_now(self) -> int:
        """Sessions held by a stall at this moment."""
        with self._lock:
            return self._stalled_now

    @property
    def stalled_total(self) -> int:
        """Sessions ever held by a stall."""
        with self._lock:
            return self._stalled_total

    # --- the relay's side (its own thread and loop) ----------------------------------------------------

    async def _hold(self, point: StallPoint) -> None:
        """Wait here while the relay stalls at `point`; the client gets no answer meanwhile."""
        with self._lock:
            if self._stall_at != point:
                return
            self._stalled_now += 1
            self._stalled_total += 1
        try:
            while True:
                with self._lock:
                    if self._stall_at != point:
                        return
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self._stalled_now -= 1

    def _rcpt_reply(self, address: str) -> str | None:
        """None to accept the recipient, else the refusal."""
        with self._lock:
            self._attempts[address.lower()] += 1
            reply = None
            if address.lower() in self._bounced:
                reply = BOUNCED
            elif self._deferred_at == "RCPT":
                reply = TRY_LATER
            if reply is not None:
                self._refusals.append(Refusal("RCPT", address, reply))
            return reply

    def _data_reply(self, envelope: Envelope) -> str:
        rcpt_tos = list(envelope.rcpt_tos)
        with self._lock:
            reply = self._data_refusal or (TRY_LATER if self._deferred_at == "DATA" else None)
            if reply is not None:
                self._refusals.append(Refusal("DATA", ", ".join(rcpt_tos), reply))
                return reply
            accepted = _parse(envelope.mail_from or "", rcpt_tos, envelope.original_content or b"")
            self._accepted.append(accepted)
            return f"250 2.0.0 Ok: queued as {len(self._accepted)}"
