"""An enrollment closed for good (expired past its revival window) gave up its organization name; a provider's mail
event in its run's last moments records it once more (still Expired), and that record must not claim the name
again: a new enrollment of the same organization is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.models import EnrollmentStatus, RecordEnrollment, TimelineEvent
from store.enrollments import find_claim, record_enrollment
from tests.integration.conftest import Stack
from tests.store.enrollments_test import view

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def step(status: EnrollmentStatus, n: int, event: str, *, release_claim: bool = False) -> RecordEnrollment:
    """The record the workflow's `_record` sends for its n-th event."""
    return RecordEnrollment(
        view=view("old1", status=status, created_at=T0, expires_at=T0 + timedelta(days=14)),
        event_key=f"enrollment-old1/event-{n}",
        event=TimelineEvent(at=T0 + timedelta(days=n), event=event, actor="system"),
        release_claim=release_claim,
    )


async def test_a_mail_event_after_the_close_does_not_claim_the_name_again(stack: Stack) -> None:
    url = stack.settings.effective_database_url
    await record_enrollment(url, step(EnrollmentStatus.new, 1, "created"))
    await record_enrollment(url, step(EnrollmentStatus.expired, 2, "expired"))
    assert await find_claim(url, "Acme Widgets Ltd") == "old1", "an Expired enrollment can be revived: it holds on"
    await record_enrollment(url, step(EnrollmentStatus.expired, 3, "closed", release_claim=True))
    assert await find_claim(url, "Acme Widgets Ltd") is None
    await record_enrollment(url, step(EnrollmentStatus.expired, 4, "complained"))  # the mail event, in the final wait

    assert await find_claim(url, "Acme Widgets Ltd") is None
    created = await stack.create()
    assert created.status_code == 201, created.text
