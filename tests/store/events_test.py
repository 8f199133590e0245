"""Events in the store, on SQLite and PostgreSQL: added once per change (in its transaction), read in an order
that never skips one committed late, scoped to a reseller's customers, pruned past their retention; and the event
each recorded change makes, its data the record as the API shows it (never a token, a secret or a link)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from activities.retention import RetentionActivities
from domain.models import (
    AccountStatus,
    AccountView,
    ContactForm,
    CredentialBatchStatus,
    EnrollmentStatus,
    EnrollmentView,
    MemberType,
    RecordAccount,
    RecordEnrollment,
    RetentionCut,
    TimelineEvent,
)
from domain.settings import Settings
from domain.webhooks import EventType
from starter.api.routes.credentials import REJECTED_SHOWN, _batch_out
from starter.api.schemas import AdministratorOut, EnrollmentOut
from store import administrators, events
from store import credentials as credential_store
from store.accounts import record_account
from store.db import transaction
from store.enrollments import record_enrollment
from store.events import StoredEvent, add_event, event_id, latest_seq, list_events, prune_events
from store.paging import BadCursor
from store.tables import Event, WebhookAttempt, WebhookDelivery
from tests.store.administrators_test import PASSWORD, invited, token
from tests.store.credentials_test import MAKER, accounts, entries, imported, new_batch
from tests.support import account_view

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
RESELLER = "r1"
SECRET_LOOKING = re.compile(r"/enroll/|/activate/|/reset/|whsec_|enr_")
"""What an event's data must never hold: a form, activation or reset link, a webhook secret, an API token."""


async def every_event(url: str, **scope: Any) -> list[StoredEvent]:
    found: list[StoredEvent] = []
    after: int | None = None
    while True:
        page, after = await list_events(
            url, after=after, types=scope.get("types"), reseller_account_id=scope.get("reseller"), limit=7
        )
        if not page:
            return found
        found += page


async def add(
    url: str, key: str, *, at: datetime = T0, reseller: str | None = None, kind: EventType | None = None
) -> None:
    async with transaction(url) as session:
        await add_event(
            session,
            key=key,
            type=kind or EventType.account_changed,
            created_at=at,
            data={"key": key},
            account_id="a1",
            reseller_account_id=reseller,
        )


# --- adding and reading ----------------------------------------------------------------------------------------


async def test_an_event_is_added_once_per_key_with_an_id_derived_from_it(database_url: str) -> None:
    await add(database_url, "account-a1/event-1")
    await add(database_url, "account-a1/event-1")  # the change's write retried
    await add(database_url, "account-a1/event-2")

    got = await every_event(database_url)
    assert [e.id for e in got] == [event_id("account-a1/event-1"), event_id("account-a1/event-2")]
    assert re.fullmatch(r"evt_[a-z2-7]{26}", got[0].id)
    assert got[0].id != got[1].id and got[0].seq < got[1].seq
    assert (got[0].type, got[0].created_at, got[0].data) == ("account.changed", T0, {"key": "account-a1/event-1"})
    assert await latest_seq(database_url) == got[1].seq


async def test_a_rolled_back_change_leaves_no_event(database_url: str) -> None:
    try:
        async with transaction(database_url) as session:
            await add_event(
                session,
                key="doomed",
                type=EventType.account_changed,
                created_at=T0,
                data={},
                account_id=None,
                reseller_account_id=None,
            )
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    assert await every_event(database_url) == [] and await latest_seq(database_url) == 0


async def test_pages_resume_after_the_cursor_and_an_empty_page_answers_it_again(database_url: str) -> None:
    for n in range(5):
        await add(database_url, f"k{n}", kind=EventType.account_changed if n % 2 else EventType.account_suspended)

    first, after = await list_events(database_url, after=None, types=None, reseller_account_id=None, limit=2)
    rest, last = await list_events(database_url, after=after, types=None, reseller_account_id=None, limit=200)
    assert [e.data["key"] for e in first + rest] == ["k0", "k1", "k2", "k3", "k4"]
    assert after == first[-1].seq and last == rest[-1].seq
    assert await list_events(database_url, after=last, types=None, reseller_account_id=None, limit=5) == ([], last)

    suspended = await every_event(database_url, types=["account.suspended"])
    assert [e.data["key"] for e in suspended] == ["k0", "k2", "k4"]
    assert await every_event(database_url, types=[]) == []


def test_the_cursor_is_opaque_and_refuses_what_it_did_not_hand_out() -> None:
    for seq in (0, 1, 2**40):
        assert events.decode_event_cursor(events.encode_event_cursor(seq)) == seq
    assert not events.encode_event_cursor(42).isdigit()
    for bad in ("42", "", "bm90IGEgY3Vyc29y", events.encode_event_cursor(1) + "x"):
        try:
            events.decode_event_cursor(bad)
        except BadCursor:
            continue
        raise AssertionError(f"{bad!r} was taken for a cursor")


async def test_a_reseller_sees_its_customers_events_only(database_url: str) -> None:
    await add(database_url, "mine", reseller=RESELLER)
    await add(database_url, "another's", reseller="r2")
    await add(database_url, "direct")

    assert [e.data["key"] for e in await every_event(database_url, reseller=RESELLER)] == ["mine"]
    assert await every_event(database_url, reseller="") == [], "a reseller user bound to no account sees none"
    assert len(await every_event(database_url)) == 3


async def test_a_reader_that_has_seen_an_event_has_seen_every_earlier_one(database_url: str) -> None:
    """Writers commit in any order and take their time about it; a poller resuming after the last seq it saw
    still sees every event, each once, in seq order."""
    writers = 40
    done = asyncio.Event()

    async def writer(n: int) -> None:
        await asyncio.sleep(random.uniform(0, 0.05))
        async with transaction(database_url) as session:
            await add_event(
                session,
                key=f"w{n}",
                type=EventType.account_changed,
                created_at=T0,
                data={"n": n},
                account_id=None,
                reseller_account_id=None,
            )
            await asyncio.sleep(random.uniform(0, 0.03))  # the rest of the change's transaction

    seen: list[int] = []

    async def poller() -> None:
        after: int | None = None
        while True:
            finished = done.is_set()
            page, after = await list_events(database_url, after=after, types=None, reseller_account_id=None, limit=50)
            seen.extend(e.seq for e in page)
            if finished and not page:
                return
            await asyncio.sleep(0.002)

    polling = asyncio.create_task(poller())
    await asyncio.gather(*(writer(n) for n in range(writers)))
    done.set()
    await polling

    every = [e.seq for e in await every_event(database_url)]
    assert len(every) == writers
    assert seen == every, "the poller skipped an event committed after a later seq, or saw one twice"


# --- pruning ---------------------------------------------------------------------------------------------------


async def test_events_deliveries_and_attempts_past_the_cut_are_pruned_in_batches(database_url: str) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    for n in range(5):
        await add(database_url, f"old-{n}", at=old)
    await add(database_url, "recent", at=recent)
    async with transaction(database_url) as session:
        for name, status, created in (
            ("d-old-done", "Succeeded", old),
            ("d-old-failed", "Failed", old),
            ("d-old-pending", "Pending", old),
            ("d-recent", "Succeeded", recent),
        ):
            session.add(
                WebhookDelivery(
                    id=name,
                    endpoint_id="we1",
                    event_id=f"evt_{name}",
                    event_type="account.changed",
                    event_seq=1,
                    status=status,
                    attempts=1,
                    created_at=created,
                    updated_at=created,
                )
            )
        for name, at in (("a-old", old), ("a-recent", recent)):
            session.add(
                WebhookAttempt(
                    key=name, delivery_id="d", endpoint_id="we1", at=at, number=1, trigger="scheduled", duration_ms=5
                )
            )

    cut = now - timedelta(days=30)
    assert await prune_events(database_url, cut, limit=2) == 2
    settings = Settings(_env_file=None, database_url=database_url, secret_key="k", events_retention="30d")
    emails = await ActivityEnvironment().run(
        RetentionActivities(settings).prune_outbox, RetentionCut(before=now - timedelta(days=400), batch=2)
    )
    assert emails.deleted == 0, "the run's outbox count is the emails' alone"

    assert [e.data["key"] for e in await every_event(database_url)] == ["recent"]
    async with transaction(database_url) as session:
        assert set(await session.scalars(select(WebhookDelivery.id))) == {"d-old-pending", "d-recent"}
        assert set(await session.scalars(select(WebhookAttempt.key))) == {"a-recent"}


# --- the events of recorded changes ----------------------------------------------------------------------------

FORM = ContactForm(
    corporate_contact_name="Pat Jones",
    corporate_contact_phone="+44 20 7946 0000",
    technical_contact_name="Sam Lee",
    technical_contact_email="sam@acme.example",
    technical_contact_phone="+44 20 7946 0001",
    billing_contact_name="Alex Kim",
    billing_contact_email="billing@acme.example",
    address_line1="1 High Street",
    city="London",
    postal_code="EC1A 1AA",
    country="United Kingdom",
    accept_terms=True,
)


def enrollment(status: EnrollmentStatus, **extra: Any) -> EnrollmentView:
    return EnrollmentView(
        id="e1",
        status=status,
        service_end_date=date(2030, 1, 1),
        member_type=MemberType.customer,
        display_users_purchased=True,
        users_purchased=100,
        organization_name="Acme Widgets Ltd",
        corporate_contact_email="pat@acme.example",
        reseller_account_id=RESELLER,
        created_at=T0,
        created_by="csm@provider.example",
        expires_at=T0 + timedelta(days=14),
        link_version=3,
        **extra,
    )


ENROLLMENT_STEPS: list[tuple[str, EnrollmentStatus, str | None]] = [
    ("created", EnrollmentStatus.new, "enrollment.created"),
    ("invited", EnrollmentStatus.new, "enrollment.invited"),
    ("opened", EnrollmentStatus.new, None),
    ("invitation_bounced", EnrollmentStatus.new, "enrollment.bounced"),
    ("edited", EnrollmentStatus.new, None),
    ("link rotated", EnrollmentStatus.new, None),
    ("resent", EnrollmentStatus.new, None),
    ("reminded", EnrollmentStatus.new, "enrollment.reminded"),
    ("complained", EnrollmentStatus.new, None),
    ("email_failed", EnrollmentStatus.new, None),
    ("old link bounced", EnrollmentStatus.new, None),
    ("expired", EnrollmentStatus.expired, "enrollment.expired"),
    ("submitted", EnrollmentStatus.pending_review, "enrollment.submitted"),
    ("review started", EnrollmentStatus.in_review, "enrollment.review_started"),
    ("approved", EnrollmentStatus.approved, "enrollment.approved"),
    ("rejected", EnrollmentStatus.rejected, "enrollment.rejected"),
    ("cancelled", EnrollmentStatus.cancelled, "enrollment.cancelled"),
    ("closed", EnrollmentStatus.expired, "enrollment.deleted"),
]


async def test_each_enrollment_change_makes_its_event_once_with_the_enrollment_as_the_api_shows_it(
    database_url: str,
) -> None:
    views = []
    for n, (name, status, _) in enumerate(ENROLLMENT_STEPS, start=1):
        form = FORM if status != EnrollmentStatus.new else None
        view = enrollment(status, form=form, account_id="a1" if name == "approved" else None)
        views.append(view)
        at = T0 + timedelta(minutes=n)
        record = RecordEnrollment(
            view=view,
            event_key=f"enrollment-e1/event-{n}",
            event=TimelineEvent(at=at, event=name, actor="csm@provider.example", note="a note"),
        )
        await record_enrollment(database_url, record)
        await record_enrollment(database_url, record)  # retried: no second event

    got = await every_event(database_url)
    expected = [(n, kind) for n, (_, _, kind) in enumerate(ENROLLMENT_STEPS, start=1) if kind is not None]
    assert [e.type for e in got] == [kind for _, kind in expected]
    assert {e.type for e in got} == {t.value for t in EventType if t.value.startswith("enrollment.")}
    for event, (n, _) in zip(got, expected, strict=True):
        view = views[n - 1]
        assert event.id == event_id(f"enrollment-e1/event-{n}")
        assert event.created_at == T0 + timedelta(minutes=n), "the change's time"
        assert event.data == EnrollmentOut.of(view).model_dump(mode="json", exclude={"timeline"})
        assert list(event.data)[:2] == ["id", "status"]
        assert (event.account_id, event.reseller_account_id) == (view.account_id, RESELLER)
        assert not SECRET_LOOKING.search(json.dumps(event.data))
        assert "link_version" not in event.data and "timeline" not in event.data


ACCOUNT_STEPS: list[tuple[str | None, AccountStatus, str | None]] = [
    ("activated", AccountStatus.active, "account.activated"),
    ("administrators invited", AccountStatus.active, None),
    (None, AccountStatus.active, None),  # a usage report: no timeline event
    ("edited", AccountStatus.active, "account.changed"),
    ("users purchased changed", AccountStatus.active, "account.users_purchased_changed"),
    ("service end warning", AccountStatus.active, "account.service_ending"),
    ("email_failed", AccountStatus.active, None),
    ("suspended", AccountStatus.suspended, "account.suspended"),
    ("reactivated", AccountStatus.active, "account.reactivated"),
    ("expired", AccountStatus.expired, "account.expired"),
    ("edited", AccountStatus.active, "account.changed"),
    ("suspended", AccountStatus.suspended, "account.suspended"),
    ("service ended", AccountStatus.suspended, None),
    ("reactivated", AccountStatus.expired, "account.expired"),  # past its end date: Expired, not Active
    ("suspended", AccountStatus.suspended, "account.suspended"),
    ("deleted", AccountStatus.deleted, "account.deleted"),
]


async def test_each_account_change_makes_its_event_once_with_the_account_as_the_api_shows_it(
    database_url: str,
) -> None:
    views: list[AccountView] = []
    for n, (name, status, _) in enumerate(ACCOUNT_STEPS, start=1):
        view = account_view(status=status, reseller_account_id=RESELLER, contacts=FORM, users_existing=n)
        views.append(view)
        entry = None if name is None else TimelineEvent(at=T0 + timedelta(hours=n), event=name, actor="system")
        record = RecordAccount(view=view, event_key=f"account-a1/event-{n}", event=entry)
        await record_account(database_url, record)
        await record_account(database_url, record)

    got = await every_event(database_url)
    expected = [(n, kind) for n, (_, _, kind) in enumerate(ACCOUNT_STEPS, start=1) if kind is not None]
    assert [e.type for e in got] == [kind for _, kind in expected]
    assert {e.type for e in got} == {t.value for t in EventType if t.value.startswith("account.")}
    for event, (n, _) in zip(got, expected, strict=True):
        assert event.created_at == T0 + timedelta(hours=n)
        assert event.data == views[n - 1].model_dump(mode="json", exclude={"timeline"})
        assert (event.account_id, event.reseller_account_id) == ("a1", RESELLER)
        assert not SECRET_LOOKING.search(json.dumps(event.data))


async def test_an_administrators_activation_makes_its_event_with_the_administrator_as_the_api_shows_it(
    database_url: str,
) -> None:
    await record_account(
        database_url,
        RecordAccount(
            view=account_view(id="acct-globex", reseller_account_id=RESELLER),
            event_key="account-acct-globex/event-1",
            event=TimelineEvent(at=T0, event="activated", actor="system"),
        ),
    )
    user_id = await invited(database_url)
    await administrators.activate(database_url, token(user_id, 1), "hash of " + PASSWORD)

    (event,) = await every_event(database_url, types=["administrator.activated"])
    shown = await administrators.get_administrator(database_url, "acct-globex", user_id)
    assert shown is not None
    assert event.data == AdministratorOut.model_validate(shown).model_dump(mode="json")
    assert event.data["status"] == "Active" and event.data["activated_at"] is not None
    assert (event.account_id, event.reseller_account_id) == ("acct-globex", RESELLER)
    assert not SECRET_LOOKING.search(json.dumps(event.data)) and "hash of" not in json.dumps(event.data)


async def test_a_batchs_end_makes_its_event_with_the_batch_as_the_api_shows_it(database_url: str) -> None:
    await accounts(database_url)
    keys = entries(3)
    repeated = dataclasses.replace(keys[0], index=3)  # a serial twice in the file: that key is rejected
    done = await imported(database_url, (await new_batch(database_url, b"<one/>")).id, [*keys, repeated])
    rejected = await credential_store.reject_batch(
        database_url, (await new_batch(database_url, b"<two/>")).id, "The passphrase is wrong."
    )
    await credential_store.reject_batch(database_url, rejected.id, "again")  # ended already: nothing new
    await credential_store.finish_batch(database_url, done.id)

    got = await every_event(database_url, types=["credential_batch.imported", "credential_batch.rejected"])
    assert [(e.type, e.data["id"]) for e in got] == [
        ("credential_batch.imported", done.id),
        ("credential_batch.rejected", rejected.id),
    ]
    for event, batch in zip(got, (done, rejected), strict=True):
        rejections = (await credential_store.batch_rejections(database_url, batch.id))[:REJECTED_SHOWN]
        shown = _batch_out(batch, rejections, batch.processed, batch.total).model_dump(mode="json")
        assert event.data == shown
        assert event.account_id == MAKER and event.created_at == batch.finished_at
        assert not SECRET_LOOKING.search(json.dumps(event.data))
    assert got[0].data["status"] == CredentialBatchStatus.imported and got[0].data["rejected_count"] == 1
    assert got[1].data["reason"] == "The passphrase is wrong."
    assert credential_store.REJECTED_SHOWN == REJECTED_SHOWN, "the event lists the rejected keys the API lists"


async def test_no_event_is_written_twice_in_the_store(database_url: str) -> None:
    await add(database_url, "k")
    await add(database_url, "k")
    async with transaction(database_url) as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 1
