"""The business metrics a workflow records, through the SDK's workflow meter: it records nothing while a run
replays, so a run evicted from the cache or moved to another worker never counts twice. Recording adds no
command to the history, so these calls need no `workflow.patched`."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.models import EnrollmentStatus, EnrollmentView
    from observability import names


def count(name: str, **labels: str) -> None:
    workflow.metric_meter().create_counter(name, names.DESCRIPTIONS[name]).add(1, labels)


def created(view: EnrollmentView) -> None:
    count(names.ENROLLMENTS_CREATED, member_type=view.member_type.value)


def transition(before: EnrollmentStatus, view: EnrollmentView, now: datetime) -> None:
    """`view` has just left `before`."""
    after = view.status
    count(names.STATUS_TRANSITIONS, from_status=before.value, to_status=after.value)
    if after == EnrollmentStatus.approved:
        count(names.ENROLLMENTS_APPROVED, member_type=view.member_type.value)
    elif after == EnrollmentStatus.expired:
        count(names.ENROLLMENTS_EXPIRED)
    elif after == EnrollmentStatus.pending_review and before == EnrollmentStatus.new:
        invited = view.invitation_sent_at or view.created_at
        workflow.metric_meter().create_histogram_float(
            names.FORM_COMPLETION, names.DESCRIPTIONS[names.FORM_COMPLETION], "s"
        ).record(max((now - invited).total_seconds(), 0.0), {"member_type": view.member_type.value})


def reminded() -> None:
    count(names.REMINDERS)


def bounced(kind: str) -> None:
    count(names.EMAILS_BOUNCED, kind=kind)
