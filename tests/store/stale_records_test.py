"""A record of an enrollment that arrives late (a timed-out attempt of the `record` activity still running when a
newer one has been written) changes nothing: the row keeps the newer view, and the claim stays as it left it."""

from __future__ import annotations

from datetime import timedelta

from domain.models import EnrollmentStatus
from store.enrollments import find_claim, get_enrollment, record_enrollment, record_version
from tests.store.enrollments_test import T0, record, view

KEY = "enrollment-e1/event-{}"


def test_the_version_is_the_event_counter_of_the_key() -> None:
    assert record_version("enrollment-e1/event-12") == 12
    assert record_version("enrollment-e1/created") is None


async def test_an_older_record_arriving_after_a_newer_one_changes_nothing(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1"), KEY.format(1)))
    submitted = view("e1", status=EnrollmentStatus.pending_review, reminders_sent=1, link_version=2)
    await record_enrollment(database_url, record(submitted, KEY.format(3), event="submitted", at=T0 + timedelta(1)))
    stale = view("e1", status=EnrollmentStatus.new, reminders_sent=0, link_version=1, users_purchased=5)
    await record_enrollment(database_url, record(stale, KEY.format(2), event="invited", at=T0 + timedelta(hours=1)))

    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert (got.status, got.reminders_sent, got.link_version, got.users_purchased) == (
        EnrollmentStatus.pending_review,
        1,
        2,
        100,
    )
    assert "invited" in [t.event for t in got.timeline], "its event is still kept (once, by its key)"


async def test_a_late_record_of_an_open_enrollment_does_not_claim_the_name_again(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1"), KEY.format(1)))
    cancelled = view("e1", status=EnrollmentStatus.cancelled)
    await record_enrollment(database_url, record(cancelled, KEY.format(3), event="cancelled", at=T0 + timedelta(1)))
    assert await find_claim(database_url, "Acme Widgets Ltd") is None
    late = view("e1", status=EnrollmentStatus.new, reminders_sent=1)
    await record_enrollment(database_url, record(late, KEY.format(2), event="reminded", at=T0 + timedelta(hours=1)))

    assert await find_claim(database_url, "Acme Widgets Ltd") is None
    await record_enrollment(database_url, record(view("e2"), "enrollment-e2/event-1"))
    assert await find_claim(database_url, "Acme Widgets Ltd") == "e2"
    got = await get_enrollment(database_url, "e1")
    assert got is not None and got.status == EnrollmentStatus.cancelled and got.reminders_sent == 0


async def test_the_same_record_again_and_a_record_without_a_counter_still_write(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1"), KEY.format(1)))
    await record_enrollment(database_url, record(view("e1", reminders_sent=1), KEY.format(2), event="reminded"))
    legacy = view("e1", reminders_sent=2)
    await record_enrollment(database_url, record(legacy, "enrollment-e1/reminded-2", event="reminded"))
    got = await get_enrollment(database_url, "e1")
    assert got is not None and got.reminders_sent == 2
