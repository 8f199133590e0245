"""The email activities against a real SMTP server and the real store, on SQLite and PostgreSQL: links that
survive a rotated secret, invitations whose link died first, and the relay's health as /healthz reports it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import form_token
from activities.enrollment import EnrollmentActivities
from domain.models import (
    EmailKind,
    EmailRequest,
    EnrollmentStatus,
    EnrollmentView,
    LinkRequest,
    MemberType,
    RecordEnrollment,
    TimelineEvent,
)
from starter.dev.mailsink import MailSink, list_messages
from store import links, outbox
from store.enrollments import record_enrollment
from tests.support import free_port, make_settings


def view(**changes: object) -> EnrollmentView:
    now = datetime.now(UTC)
    base = EnrollmentView(
        id="e1",
        status=EnrollmentStatus.new,
        service_end_date=date(2030, 1, 1),
        member_type=MemberType.customer,
        display_users_purchased=False,
        users_purchased=None,
        organization_name="Acme Widgets Ltd",
        corporate_contact_email="pat@acme.example",
        reseller_account_id=None,
        created_at=now,
        expires_at=now + timedelta(days=14),
        link_version=1,
    )
    return base.model_copy(update=changes)


async def persist(url: str, enrollment: EnrollmentView, n: int) -> None:
    event = TimelineEvent(at=datetime.now(UTC), event="created", actor="csm")
    await record_enrollment(url, RecordEnrollment(view=enrollment, event_key=f"e1/event-{n}", event=event))


def activities(tmp_path: Path, url: str, port: int, secret: str = "first-secret-key-for-tests") -> EnrollmentActivities:
    settings = make_settings(
        tmp_path, database_url=url, temporal_address="unused:7233", smtp_port=port, task_queue="unused"
    )
    return EnrollmentActivities(settings.model_copy(update={"secret_key": secret}))


def env(activity_id: str) -> ActivityEnvironment:
    """An activity context of its own, so each email has its own outbox key (workflow id + activity id)."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, workflow_id="enrollment-e1", activity_id=activity_id)
    return environment


def request(kind: EmailKind, enrollment: EnrollmentView, version: int) -> EmailRequest:
    return EmailRequest(
        kind=kind,
        enrollment=enrollment,
        to=[enrollment.corporate_contact_email],
        link_version=version,
        current_link_only=True,
    )


async def test_a_reminder_after_the_secret_rotated_carries_a_link_that_works(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    enrollment = view()
    await persist(database_url, enrollment, 1)
    before = activities(tmp_path, database_url, mail_sink.port)
    await env("invite-1").run(before.send_invitation, request(EmailKind.invitation, enrollment, 1))
    after = activities(tmp_path, database_url, mail_sink.port, secret="second-secret-key-after-rotation")
    result = await env("email-remind-1-1").run(after.send_email, request(EmailKind.reminder, enrollment, 1))
    assert not result.dropped
    old = form_token(before.settings.signing_key, "e1", 1)
    new = form_token(after.settings.signing_key, "e1", 1)
    assert old != new
    assert (await links.resolve(database_url, old))[0] == links.LinkState.live
    assert (await links.resolve(database_url, new))[0] == links.LinkState.live, "the reminder's link opens the form"
    texts = [m.text or "" for m in list_messages(mail_sink.mailbox_dir)]
    assert len(texts) == 2 and any(new in text for text in texts) and any(old in text for text in texts)


async def test_an_invitation_whose_link_is_no_longer_current_is_dropped(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    await persist(database_url, view(link_version=2), 1)
    acts = activities(tmp_path, database_url, mail_sink.port)
    result = await env("invite-1").run(acts.send_invitation, request(EmailKind.invitation, view(), 1))
    assert result.dropped
    assert list_messages(mail_sink.mailbox_dir) == []
    token = form_token(acts.settings.signing_key, "e1", 1)
    assert (await links.resolve(database_url, token))[0] == links.LinkState.unknown
    await persist(database_url, view(link_version=2, status=EnrollmentStatus.cancelled), 2)
    result = await env("invite-2").run(acts.send_invitation, request(EmailKind.invitation, view(), 2))
    assert result.dropped, "a cancelled enrollment's invitation never goes"


async def test_relay_trouble_retries_and_shows_until_the_relay_accepts(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    enrollment = view()
    await persist(database_url, enrollment, 1)
    down = activities(tmp_path, database_url, free_port())
    with pytest.raises(ApplicationError) as failed:
        await env("invite-1").run(down.send_invitation, request(EmailKind.invitation, enrollment, 1))
    assert not failed.value.non_retryable, "no connection is trouble on our side: it retries"
    trouble = await outbox.mail_trouble(database_url)
    assert trouble is not None and "Connect" in trouble[1]
    up = activities(tmp_path, database_url, mail_sink.port)
    await env("invite-1").run(up.send_invitation, request(EmailKind.invitation, enrollment, 1))
    assert await outbox.mail_trouble(database_url) is None
    assert len(list_messages(mail_sink.mailbox_dir)) == 1


async def test_closing_the_links_drops_the_invitation_still_retrying(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    enrollment = view()
    await persist(database_url, enrollment, 1)
    down = activities(tmp_path, database_url, free_port())
    with pytest.raises(ApplicationError):
        await env("invite-1").run(down.send_invitation, request(EmailKind.invitation, enrollment, 1))
    await env("close-links-cancelled-2").run(down.close_form_links, LinkRequest(enrollment_id="e1", link_version=1))
    [email] = await outbox.emails_of(database_url, enrollment_id="e1")
    assert email.state == "dropped" and email.attempts == 1
    retried = await env("invite-1").run(down.send_invitation, request(EmailKind.invitation, enrollment, 1))
    assert retried.dropped, "a retry after the links closed never sends"


async def test_a_cancellation_while_the_send_is_being_recorded_does_not_send_it_twice(
    database_url: str, mail_sink: MailSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay accepted the invitation, the store is down while the send is recorded, and the attempt is
    cancelled meanwhile (a worker stopping): the attempt still finishes the record once the store is back, so
    the retry a cancelled attempt would get finds the send and mails nothing."""
    enrollment = view()
    await persist(database_url, enrollment, 1)
    acts = activities(tmp_path, database_url, mail_sink.port)
    record_outcome = outbox.record_outcome
    store = {"down": True}
    record_refused = asyncio.Event()

    async def store_down_for_the_send(url: str, key: str, **kwargs: Any) -> None:
        if store["down"] and kwargs.get("sent_at") is not None:
            record_refused.set()
            raise OSError("the store is unreachable")
        await record_outcome(url, key, **kwargs)

    monkeypatch.setattr(outbox, "record_outcome", store_down_for_the_send)
    first = env("invite-1")
    attempt = asyncio.create_task(first.run(acts.send_invitation, request(EmailKind.invitation, enrollment, 1)))
    await asyncio.wait_for(record_refused.wait(), 15)
    assert len(list_messages(mail_sink.mailbox_dir)) == 1, "the relay has the invitation"
    first.cancel()
    await asyncio.sleep(0.2)
    store["down"] = False
    try:
        finished = await asyncio.wait_for(attempt, 15)
    except asyncio.CancelledError:
        finished = None
    retried = await env("invite-1").run(acts.send_invitation, request(EmailKind.invitation, enrollment, 1))
    assert len(list_messages(mail_sink.mailbox_dir)) == 1, "the retry sent the invitation again"
    assert finished is not None and finished.sent_at is not None, "the cancelled attempt finished its record"
    assert retried.sent_at == finished.sent_at
    assert await outbox.sent_result(database_url, "enrollment-e1/invite-1") is not None


async def test_the_send_is_recorded_before_the_goodbye(
    database_url: str, mail_sink: MailSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the time the relay is asked to QUIT, the outbox already says sent: a worker dying during QUIT (or a
    relay slow to answer it) leaves nothing for a retry to send again."""
    enrollment = view()
    await persist(database_url, enrollment, 1)
    acts = activities(tmp_path, database_url, mail_sink.port)
    seen_at_quit: list[bool] = []
    quit_ = aiosmtplib.SMTP.quit

    async def quit_and_look(self: aiosmtplib.SMTP, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        seen_at_quit.append(await outbox.sent_result(database_url, "enrollment-e1/invite-1") is not None)
        return await quit_(self, **kwargs)

    monkeypatch.setattr(aiosmtplib.SMTP, "quit", quit_and_look)
    await env("invite-1").run(acts.send_invitation, request(EmailKind.invitation, enrollment, 1))
    assert seen_at_quit == [True], "the send was not recorded before QUIT"
    assert len(list_messages(mail_sink.mailbox_dir)) == 1
