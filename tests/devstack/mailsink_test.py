"""The dev mail sink: what an SMTP client sends is what `list_messages` reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from starter.dev.mailsink import MailSink, get_message, list_messages, store_message


def _invitation() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Enrollment <enrollment@localhost>"
    message["To"] = "Ana Müller <ana@example.com>"
    message["Subject"] = "Complete your enrollment — Acme GmbH"
    message["Message-ID"] = "<invite-1@localhost>"
    message.set_content("Open https://example.test/enroll/abc to complete it.\n")
    message.add_alternative(
        '<p>Open <a href="https://example.test/enroll/abc">the form</a>.</p>\n',
        subtype="html",
    )
    return message


@pytest.mark.asyncio
async def test_a_sent_message_is_stored_once_and_read_back(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    with MailSink(tmp_path / "mailbox", host="127.0.0.1", port=0) as sink:
        assert sink.port > 0
        await aiosmtplib.send(
            _invitation(),
            hostname="127.0.0.1",
            port=sink.port,
            sender="bounces@localhost",
            recipients=["ana@example.com", "audit@example.com"],
        )

    [stored] = list_messages(tmp_path / "mailbox")
    assert stored.subject == "Complete your enrollment — Acme GmbH"
    assert stored.mail_from == "bounces@localhost"
    assert stored.rcpt_tos == ["ana@example.com", "audit@example.com"]
    assert stored.message_id == "<invite-1@localhost>"
    assert stored.text is not None and "https://example.test/enroll/abc" in stored.text
    assert stored.html is not None and '<a href="https://example.test/enroll/abc">' in stored.html
    assert stored.headers["To"] == "Ana Müller <ana@example.com>"
    assert not any(name.lower().startswith("x-envelope-") for name in stored.headers)
    assert before <= stored.received_at <= datetime.now(UTC)
    assert get_message(tmp_path / "mailbox", stored.id) == stored
    assert not list((tmp_path / "mailbox").glob(".*")), "no temporary file is left behind"


@pytest.mark.asyncio
async def test_messages_are_listed_newest_first(tmp_path: Path) -> None:
    with MailSink(tmp_path, port=0) as sink:
        for number in range(3):
            message = EmailMessage()
            message["From"] = "enrollment@localhost"
            message["To"] = "ana@example.com"
            message["Subject"] = f"message {number}"
            message.set_content("plain only")
            await aiosmtplib.send(message, hostname=sink.host, port=sink.port)

    listed = list_messages(tmp_path)
    assert [m.subject for m in listed] == ["message 2", "message 1", "message 0"]
    assert listed[0].html is None and listed[0].text == "plain only\n"


def test_ids_that_are_not_ours_are_refused(tmp_path: Path) -> None:
    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    (tmp_path / "secret.eml").write_text("Subject: not a message of the sink\n\nsecret\n")
    for bad in ["../secret", "..%2Fsecret", "/etc/passwd", "a/b", "a\\b", "", "nope"]:
        assert get_message(mailbox, bad) is None
    assert list_messages(mailbox) == []
    assert list_messages(tmp_path / "missing") == []


def test_two_sinks_get_two_free_ports(tmp_path: Path) -> None:
    with MailSink(tmp_path / "a") as first, MailSink(tmp_path / "b") as second:
        assert first.port != second.port
    with MailSink(tmp_path / "a", port=first.port):  # the port was released on stop
        pass


def test_a_body_in_an_unknown_charset_is_still_readable(tmp_path: Path) -> None:
    raw = b"Subject: odd\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nhello\r\n"
    message_id = store_message(tmp_path, "a@example.com", ["b@example.com"], raw)
    stored = get_message(tmp_path, message_id)
    assert stored is not None
    assert (stored.subject, stored.text, stored.rcpt_tos) == ("odd", "hello\n", ["b@example.com"])
    assert (tmp_path / f"{message_id}.eml").read_bytes().endswith(raw)
