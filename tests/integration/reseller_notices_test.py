"""A customer's service-end warning and expired notice go to its reseller's active administrators as well, on a
real SMTP server and the real store (SQLite and PostgreSQL).

The workflow addresses the customer's own people; the `send_email` activity adds the reseller's administrators
from the store at send time (so their addresses never enter a workflow history), as blind copies. The outbox
keeps the first attempt's recipients: a retry sends to that same set, and nobody gets the email twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import update
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.enrollment import EnrollmentActivities
from domain.models import AccountView, EmailKind, EmailRequest, MemberType, RecordAccount, Role
from starter.dev.mailsink import MailSink, list_messages
from store import outbox, users
from store.accounts import record_account
from store.db import transaction
from store.tables import OutboxEmail, User
from tests.faults.relay import TRY_LATER, Refusal, Relay
from tests.integration.accounts_test import approved, staff
from tests.integration.conftest import Stack, eventually
from tests.integration.mail_activities_test import view as enrollment_view
from tests.support import account_view, free_port, make_settings

PASSWORD = "a long enough password"
CONTACT = "pat@acme.example"
TECH = "tech@acme.example"
AMY = "amy@vertex.example"
ZED = "zed@vertex.example"
LATE = "late@vertex.example"
CUSTOMER = account_view(
    id="c1", enrollment_id="e1", reseller_account_id="r1", corporate_contact_email=CONTACT, created_by=None
)


def acts(tmp_path: Path, url: str, port: int) -> EnrollmentActivities:
    return EnrollmentActivities(
        make_settings(tmp_path, database_url=url, temporal_address="unused:7233", smtp_port=port, task_queue="x")
    )


def env(activity_id: str) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, workflow_id="account-c1", activity_id=activity_id)
    return environment


def notice(kind: EmailKind, account: AccountView = CUSTOMER) -> EmailRequest:
    return EmailRequest(kind=kind, account=account, to=[CONTACT, TECH])


async def seed(url: str) -> None:
    """Reseller Vertex (r1) with two active administrators, a disabled and an invited one; another reseller's
    administrator; and Vertex's customer Acme (c1)."""
    for view in (
        account_view(id="r1", enrollment_id="er1", organization_name="Vertex", member_type=MemberType.reseller),
        account_view(id="r2", enrollment_id="er2", organization_name="Other", member_type=MemberType.reseller),
        CUSTOMER,
    ):
        await record_account(url, RecordAccount(view=view, event_key=f"account-{view.id}/event-1", event=None))
    for email, account in ((AMY, "r1"), (ZED, "r1"), ("off@vertex.example", "r1"), ("sam@other.example", "r2")):
        await users.add_user(url, email=email, role=Role.reseller, password=PASSWORD, account_id=account)
    invited = await users.add_user(
        url, email="new@vertex.example", role=Role.reseller, password=PASSWORD, account_id="r1"
    )
    async with transaction(url) as session:
        await session.execute(update(User).where(User.email == "off@vertex.example").values(disabled=True))
        await session.execute(update(User).where(User.id == invited.id).values(invitation="invited", password_hash=""))


async def outbox_row(url: str, key: str) -> OutboxEmail:
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        assert row is not None
        return row


async def test_the_resellers_active_administrators_get_their_customers_service_end_notices(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    await seed(database_url)
    a = acts(tmp_path, database_url, mail_sink.port)

    result = await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    assert result.sent_at is not None and result.refused == []
    [warning] = list_messages(mail_sink.mailbox_dir)
    assert sorted(warning.rcpt_tos) == sorted([CONTACT, TECH, AMY, ZED]), "not the disabled, invited or other ones"
    assert warning.headers["To"] == f"{CONTACT}, {TECH}", "the reseller's people are blind copies"
    assert "Acme Widgets Ltd" in warning.subject
    row = await outbox_row(database_url, "account-c1/email-warning-30d")
    assert row.recipients == f"{CONTACT}, {TECH}, {AMY}, {ZED}", "the outbox records everyone it went to"

    await env("email-expired-2030-01-01").run(a.send_email, notice(EmailKind.account_expired))
    expired = [m for m in list_messages(mail_sink.mailbox_dir) if m.id != warning.id]
    assert [sorted(m.rcpt_tos) for m in expired] == [sorted([CONTACT, TECH, AMY, ZED])]

    # Other emails about the customer, and the notices of a customer sold directly, go to whom the workflow says.
    other = EmailRequest(kind=EmailKind.expired, enrollment=enrollment_view(), account=CUSTOMER, to=[CONTACT, TECH])
    await env("email-expired-enrollment").run(a.send_email, other)
    direct = CUSTOMER.model_copy(update={"reseller_account_id": None})
    await env("email-warning-7d").run(a.send_email, notice(EmailKind.service_end_warning, direct))
    later = [m for m in list_messages(mail_sink.mailbox_dir) if m.id not in {warning.id, expired[0].id}]
    assert [sorted(m.rcpt_tos) for m in later] == [sorted([CONTACT, TECH])] * 2


async def test_a_reseller_administrator_who_created_the_customer_is_not_sent_it_twice(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    await seed(database_url)
    a = acts(tmp_path, database_url, mail_sink.port)
    request = EmailRequest(kind=EmailKind.service_end_warning, account=CUSTOMER, to=[CONTACT, "Amy@Vertex.example"])
    await env("email-warning-1d").run(a.send_email, request)
    [message] = list_messages(mail_sink.mailbox_dir)
    assert sorted(a.lower() for a in message.rcpt_tos) == sorted([CONTACT, AMY, ZED])


async def test_a_retry_sends_to_the_first_attempts_recipients(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    await seed(database_url)
    with pytest.raises(ApplicationError) as down:
        await env("email-warning-30d").run(
            acts(tmp_path, database_url, free_port()).send_email, notice(EmailKind.service_end_warning)
        )
    assert down.value.type == "SmtpUnreachable" and not down.value.non_retryable

    # Between the attempts, Vertex gets a new administrator and disables Zed: the retry keeps the first set.
    await users.add_user(database_url, email=LATE, role=Role.reseller, password=PASSWORD, account_id="r1")
    async with transaction(database_url) as session:
        await session.execute(update(User).where(User.email == ZED).values(disabled=True))
    a = acts(tmp_path, database_url, mail_sink.port)
    await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    [message] = list_messages(mail_sink.mailbox_dir)
    assert sorted(message.rcpt_tos) == sorted([CONTACT, TECH, AMY, ZED]), "once, to the set first addressed"


class DeferringRelay(Relay):
    """The relay of tests/faults, answering 451 4.3.0 at RCPT for the addresses `defer_only` names."""

    def __init__(self) -> None:
        super().__init__()
        self.deferred: set[str] = set()

    def _rcpt_reply(self, address: str) -> str | None:
        reply = super()._rcpt_reply(address)
        if reply is not None or address.lower() not in self.deferred:
            return reply
        with self._lock:
            self._refusals.append(Refusal("RCPT", address, TRY_LATER))
        return TRY_LATER


@pytest.fixture
def relay() -> Iterator[DeferringRelay]:
    with DeferringRelay() as started:
        yield started


async def test_a_deferred_reseller_administrator_is_retried_alone(
    database_url: str, relay: DeferringRelay, tmp_path: Path
) -> None:
    await seed(database_url)
    a = acts(tmp_path, database_url, relay.port)
    relay.deferred = {AMY}
    with pytest.raises(ApplicationError) as deferred:
        await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    assert deferred.value.type == "SmtpDeferred"
    relay.deferred = set()
    result = await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    assert result.sent_at is not None
    for address in (CONTACT, TECH, ZED, AMY):
        assert len(relay.messages_to(address)) == 1, f"{address} gets it once"
    assert [sorted(m.rcpt_tos) for m in relay.messages()] == [sorted([CONTACT, TECH, ZED]), [AMY]]


async def test_a_reseller_administrators_bounce_stays_out_of_the_workflows_result(
    database_url: str, relay: DeferringRelay, tmp_path: Path
) -> None:
    await seed(database_url)
    relay.bounce(ZED, TECH)
    a = acts(tmp_path, database_url, relay.port)
    result = await env("email-warning-30d").run(a.send_email, notice(EmailKind.service_end_warning))
    assert result.sent_at is not None
    assert [line.partition(": ")[0] for line in result.refused] == [TECH], "only the addresses the workflow sent to"
    row = await outbox_row(database_url, "account-c1/email-warning-30d")
    assert ZED in (row.refused_to or "") and TECH in (row.refused_to or ""), "the outbox keeps every refusal"
    assert await outbox.sent_result(database_url, "account-c1/email-warning-30d") is not None

    # Everyone the workflow addressed refused, a reseller administrator's address too: the bounce names one of
    # the workflow's own recipients.
    relay.bounce(CONTACT, AMY)
    with pytest.raises(ApplicationError) as bounced:
        await env("email-expired-1").run(a.send_email, notice(EmailKind.account_expired))
    assert bounced.value.type == "SmtpRecipientRefused" and bounced.value.non_retryable
    assert AMY not in str(bounced.value) and ZED not in str(bounced.value)


async def test_through_the_whole_stack_the_reseller_hears_its_customer_is_ending(stack: Stack) -> None:
    """The real account workflow, worker and relay: a customer of Vertex ending tomorrow warns its contacts, the
    CSM, and Vertex's active administrator, once each; the workflow's history never holds that address."""
    reviewer, _ = await staff(stack)
    reseller = await approved(
        stack, reviewer, "Vertex Resale", member_type="reseller", display_users_purchased=False, users_purchased=None
    )
    await stack.token_for(AMY, Role.reseller, account_id=reseller)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    customer = await approved(
        stack, reviewer, "Initech Systems", reseller_account_id=reseller, service_end_date=tomorrow
    )
    subject = f"Service for Initech Systems ends on {tomorrow}"

    def warned(address: str) -> bool:
        return [m.subject for m in stack.mail_to(address) if "ends on" in m.subject] == [subject]

    for address in ("pat@initech.example", "csm@provider.example", AMY):
        await eventually(partial(warned, address))
    history = await stack.temporal.client.get_workflow_handle(f"account-{customer}").fetch_history()
    assert AMY not in history.to_json(), "the reseller's address stays out of the workflow's history"
