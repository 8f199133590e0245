"""The embedded dev mail sink: an SMTP server that keeps every message it receives as a file.

Each message is `<mailbox dir>/<id>.eml`, the id being `<received UTC timestamp>-<uuid>` so names sort by
arrival. The file holds the received RFC 5322 bytes preceded by `X-Envelope-From:` and one `X-Envelope-To:`
line per recipient (the SMTP envelope, which the message headers need not match). Files are written to a
temporary name and renamed, so a reader never sees half a message.

In-process (tests): `with MailSink(tmp_path) as sink:` then send to `127.0.0.1:{sink.port}` and read back with
`list_messages(tmp_path)`. As a process (`enroll up`): `python -m starter.dev.mailsink`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import re
import signal
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import BaseModel

from domain.settings import Settings

log = logging.getLogger(__name__)

_ID = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{32}$")
_TIMESTAMP = "%Y%m%dT%H%M%S%fZ"
_FROM = b"X-Envelope-From: "
_TO = b"X-Envelope-To: "


class StoredMessage(BaseModel):
    id: str
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    message_id: str | None
    text: str | None
    html: str | None
    headers: dict[str, str]


def store_message(mailbox_dir: Path, mail_from: str, rcpt_tos: list[str], data: bytes) -> str:
    """Keep one received message in `mailbox_dir`; returns its id."""
    received_at = datetime.now(UTC)
    stored_id = f"{received_at.strftime(_TIMESTAMP)}-{uuid.uuid4().hex}"
    envelope = _FROM + mail_from.encode() + b"\r\n"
    envelope += b"".join(_TO + rcpt.encode() + b"\r\n" for rcpt in rcpt_tos)
    mailbox_dir.mkdir(parents=True, exist_ok=True)
    partial = mailbox_dir / f".{stored_id}.partial"
    partial.write_bytes(envelope + data)
    os.replace(partial, mailbox_dir / f"{stored_id}.eml")
    return stored_id


def list_messages(mailbox_dir: Path) -> list[StoredMessage]:
    """Every stored message, newest first."""
    if not mailbox_dir.is_dir():
        return []
    ids = sorted(
        (path.stem for path in mailbox_dir.glob("*.eml") if _ID.match(path.stem)),
        reverse=True,
    )
    return [message for message in (get_message(mailbox_dir, id_) for id_ in ids) if message is not None]


def get_message(mailbox_dir: Path, message_id: str) -> StoredMessage | None:
    """The stored message with this `StoredMessage.id`; None if there is none or the id is not one of ours."""
    match = _ID.match(message_id)
    if match is None:
        return None
    try:
        raw = (mailbox_dir / f"{message_id}.eml").read_bytes()
    except FileNotFoundError:
        return None
    mail_from, rcpt_tos = _envelope(raw)
    message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    headers: dict[str, str] = {}
    for name, value in message.items():
        if not name.lower().startswith("x-envelope-"):
            headers.setdefault(name, str(value))
    found_id = message.get("Message-ID")
    return StoredMessage(
        id=message_id,
        received_at=datetime.strptime(match.group(1), _TIMESTAMP).replace(tzinfo=UTC),
        mail_from=mail_from,
        rcpt_tos=rcpt_tos,
        subject=str(message.get("Subject", "")),
        message_id=str(found_id).strip() if found_id is not None else None,
        text=_body(message, "plain"),
        html=_body(message, "html"),
        headers=headers,
    )


def _envelope(raw: bytes) -> tuple[str, list[str]]:
    mail_from, rcpt_tos = "", []
    for line in raw.splitlines():
        if line.startswith(_FROM):
            mail_from = line.removeprefix(_FROM).decode(errors="replace")
        elif line.startswith(_TO):
            rcpt_tos.append(line.removeprefix(_TO).decode(errors="replace"))
        else:
            break
    return mail_from, rcpt_tos


def _body(message: EmailMessage, subtype: str) -> str | None:
    """The decoded text of the preferred `text/<subtype>` part, with `\n` line ends."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        text = str(part.get_content())
    except LookupError:  # a charset Python does not know
        payload = part.get_payload(decode=True)
        text = payload.decode(errors="replace") if isinstance(payload, bytes) else ""
    return text.replace("\r\n", "\n")


class _Handler:
    def __init__(self, mailbox_dir: Path) -> None:
        self.mailbox_dir = mailbox_dir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stored_id = store_message(
            self.mailbox_dir,
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
            envelope.original_content or b"",
        )
        log.info("stored message %s for %s", stored_id, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller probes `self.port` once bound; with port 0 that must be the port the OS chose."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class MailSink:
    """The SMTP server on `host:port` (port 0: a free one, see `.port` after `start()`), in a thread."""

    def __init__(self, mailbox_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mailbox_dir = mailbox_dir
        self.host = host
        self.port = port
        self._controller: _Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("the mail sink is already running")
        self.mailbox_dir.mkdir(parents=True, exist_ok=True)
        controller = _Controller(
            _Handler(self.mailbox_dir),
            hostname=self.host,
            port=self.port,
            server_hostname="enroll-mailsink",  # the default, getfqdn(), may wait on DNS
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_mailsink(settings: Settings) -> None:
    """Serve on the configured SMTP host and port until SIGINT or SIGTERM."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so it inherits the mask and sigwait() gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    sink = MailSink(settings.mailbox_dir, host=settings.effective_smtp_host, port=settings.smtp_port)
    sink.start()
    log.info("dev mail sink on %s:%d, storing into %s", sink.host, sink.port, settings.mailbox_dir.resolve())
    try:
        signal.sigwait(stop_signals)
    finally:
        sink.stop()


if __name__ == "__main__":
    # aiosmtpd logs every connection at INFO; ours is enough.
    logging.basicConfig(level=logging.WARNING, format="mailsink: %(message)s")
    log.setLevel(logging.INFO)
    run_mailsink(Settings())
