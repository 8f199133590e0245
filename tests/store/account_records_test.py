"""A record of an account that arrives late (a timed-out attempt of `record_account` still running when a newer
one has been written) changes nothing: the row keeps the newer view. The counter in the key grows across the
account workflow's runs; keys of runs from before that (`<workflow id>/<run id>/event-<n>`) carry no version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.models import AccountStatus, AccountView, RecordAccount, TimelineEvent
from store.accounts import get_account, record_account
from store.enrollments import record_version
from tests.support import account_view

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "account-a1/event-{}"


def record(view: AccountView, key: str, event: str, at: datetime = T0) -> RecordAccount:
    return RecordAccount(view=view, event_key=key, event=TimelineEvent(at=at, event=event, actor="system"))


def test_only_a_key_by_workflow_id_carries_a_version() -> None:
    assert record_version("account-a1/event-7") == 7
    assert record_version("account-a1/0f3c-run/event-7") is None, "a run's own counter starts again at 1"


async def test_an_older_account_record_arriving_after_a_newer_one_changes_nothing(database_url: str) -> None:
    await record_account(database_url, record(account_view(), KEY.format(1), "activated"))
    suspended = account_view(status=AccountStatus.suspended, users_purchased=1100)
    await record_account(database_url, record(suspended, KEY.format(3), "suspended", T0 + timedelta(days=1)))
    stale = account_view(users_purchased=1050)
    await record_account(database_url, record(stale, KEY.format(2), "edited", T0 + timedelta(hours=1)))

    got = await get_account(database_url, "a1")
    assert got is not None
    assert (got.status, got.users_purchased) == (AccountStatus.suspended, 1100)
    assert [t.event for t in got.timeline].count("edited") == 1, "its event is still kept (once, by its key)"

    # A record from a run before the version (keyed by run) still writes, as it always did.
    legacy = account_view(status=AccountStatus.active, users_purchased=1200)
    await record_account(database_url, record(legacy, "account-a1/run-1/event-1", "reactivated"))
    got = await get_account(database_url, "a1")
    assert got is not None and (got.status, got.users_purchased) == (AccountStatus.active, 1200)
