"""What the Temporal UI shows of a run: the "current details" of each workflow, as pure functions of its view.

An ops engineer reads these at 3 a.m. in the workflow's page: the status first, then what the run waits for
next, then (for an enrollment) the recent timeline. No addresses or names: the view's timeline carries actors
and notes the workflow already holds, and nothing else is added here.
"""

from __future__ import annotations

from datetime import datetime

from domain.models import AccountView, AdministratorStatus, AdministratorView, EnrollmentStatus, EnrollmentView

Deadline = tuple[datetime, str]
"""(when, "reminder" | "expire"): what a waiting invitation does next."""


def enrollment_details(view: EnrollmentView, deadline: Deadline | None) -> str:
    """Status, Bounced marker and reminders; for a New enrollment its next reminder and form deadline; then the
    timeline the run holds, as a table."""
    details = f"**{view.status.value}**{' · Bounced' if view.bounced else ''} · reminders sent: {view.reminders_sent}"
    if view.status == EnrollmentStatus.new and view.expires_at is not None and deadline is not None:
        at, kind = deadline
        if kind == "reminder":
            details += f" · next reminder {at:%Y-%m-%d %H:%M} UTC"
        details += f" · form due {view.expires_at:%Y-%m-%d %H:%M} UTC"
    if view.timeline:
        rows = "\n".join(
            f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.event} | {e.actor} | {e.note or ''} |" for e in view.timeline
        )
        details += f"\n\n| at (UTC) | event | actor | note |\n|---|---|---|---|\n{rows}"
    return details


def account_details(view: AccountView) -> str:
    """Status, service end, the users purchased and existing, and the last event."""
    details = f"**{view.status.value}** · service ends {view.service_end_date.isoformat()}"
    if view.display_users_purchased:
        details += f" · users purchased {view.users_purchased or 0:,}"
    if view.users_existing is not None:
        details += f" · users existing {view.users_existing:,}"
    if view.timeline:
        last = view.timeline[-1]
        details += f"\n\nLast event: {last.event} by {last.actor} at {last.at:%Y-%m-%d %H:%M:%S} UTC"
    return details


def administrator_details(view: AdministratorView, deadline: Deadline | None) -> str:
    """Status, Bounced marker and link version; while invited, the next reminder and the link's expiry."""
    details = f"**{view.status.value}**{' · Bounced' if view.bounced else ''} · link version {view.link_version}"
    if view.status == AdministratorStatus.invited and deadline is not None:
        at, kind = deadline
        if kind == "reminder":
            details += f" · reminder {at:%Y-%m-%d %H:%M} UTC"
        details += f" · link valid until {view.expires_at:%Y-%m-%d %H:%M} UTC"
    elif view.status == AdministratorStatus.expired:
        details += f" · expired {view.expires_at:%Y-%m-%d %H:%M} UTC; resend to invite again"
    return details
