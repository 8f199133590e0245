"""What the Temporal UI shows of each workflow (its current details), as pure functions of the view."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.models import (
    AdministratorStatus,
    AdministratorView,
    EnrollmentStatus,
    EnrollmentView,
    TimelineEvent,
)
from tests.support import account_view
from tests.workflows.enrollment_test import FIELDS
from workflows.details import account_details, administrator_details, enrollment_details

AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def test_a_new_enrollment_shows_its_next_reminder_deadline_and_timeline() -> None:
    view = EnrollmentView(
        id="e1",
        status=EnrollmentStatus.new,
        created_at=AT,
        created_by="csm@provider.example",
        expires_at=datetime(2026, 12, 20, 9, 30, tzinfo=UTC),
        reminders_sent=1,
        bounced=True,
        timeline=[TimelineEvent(at=AT, event="invited", actor="system")],
        **FIELDS.model_dump(),
    )
    text = enrollment_details(view, (datetime(2026, 12, 13, 9, 30, tzinfo=UTC), "reminder"))
    assert text.startswith("**New** · Bounced · reminders sent: 1 · next reminder 2026-12-13 09:30 UTC")
    assert "form due 2026-12-20 09:30 UTC" in text
    assert "| 2026-12-06 09:30:00 | invited | system |  |" in text
    closed = view.model_copy(update={"status": EnrollmentStatus.approved, "bounced": False, "timeline": []})
    assert enrollment_details(closed, None) == "**Approved** · reminders sent: 1"


def test_an_account_shows_its_end_date_users_and_last_event() -> None:
    view = account_view(
        users_purchased=1500,
        users_existing=1200,
        timeline=[TimelineEvent(at=AT, event="edited", actor="csm@provider.example")],
    )
    assert account_details(view) == (
        "**Active** · service ends 2030-01-01 · users purchased 1,500 · users existing 1,200"
        "\n\nLast event: edited by csm@provider.example at 2026-12-06 09:30:00 UTC"
    )


def test_an_administrators_invitation_shows_its_reminder_and_expiry() -> None:
    view = AdministratorView(
        user_id="u1", account_id="a1", status=AdministratorStatus.invited, link_version=2, expires_at=AT
    )
    text = administrator_details(view, (datetime(2026, 12, 3, tzinfo=UTC), "reminder"))
    assert (
        text == "**Invited** · link version 2 · reminder 2026-12-03 00:00 UTC · link valid until 2026-12-06 09:30 UTC"
    )
    expired = view.model_copy(update={"status": AdministratorStatus.expired})
    assert administrator_details(expired, None).endswith("expired 2026-12-06 09:30 UTC; resend to invite again")
