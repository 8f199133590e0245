"""The names of the product's own metrics: a contract with the dashboards and alert rules in deploy/ (and the
README's Operations section). Workflows and activities record theirs through the Temporal SDK's meter, served
on the worker's endpoint (`ENROLL_METRICS_PORT`); the API serves its own at `/metrics`."""

from __future__ import annotations

# The worker (Temporal SDK meter; each also carries namespace, task_queue and workflow_type or activity_type).
ENROLLMENTS_CREATED = "enroll_enrollments_created_total"  # member_type
STATUS_TRANSITIONS = "enroll_status_transitions_total"  # from_status, to_status
REMINDERS = "enroll_reminders_total"
ENROLLMENTS_EXPIRED = "enroll_enrollments_expired_total"
ENROLLMENTS_APPROVED = "enroll_enrollments_approved_total"  # member_type
EMAILS_SENT = "enroll_emails_sent_total"  # kind
EMAILS_BOUNCED = "enroll_emails_bounced_total"  # kind
EMAIL_FAILURES = "enroll_email_failures_total"  # kind, error: an attempt that failed and will be retried
FORM_COMPLETION = "enroll_form_completion_seconds"  # member_type: from the invitation to the submitted form

DESCRIPTIONS = {
    ENROLLMENTS_CREATED: "Enrollments created",
    STATUS_TRANSITIONS: "Enrollment status changes",
    REMINDERS: "Reminders queued for contacts",
    ENROLLMENTS_EXPIRED: "Enrollments expired before the form was completed",
    ENROLLMENTS_APPROVED: "Enrollments approved",
    EMAILS_SENT: "Emails the relay accepted",
    EMAILS_BOUNCED: "Emails refused for good or reported bounced",
    EMAIL_FAILURES: "Email attempts that failed and will be retried",
    FORM_COMPLETION: "From the invitation to the submitted form",
}
"""One description per worker series: the SDK's exporter keeps one instrument per name, so every place that
records a series (and the zeros the worker starts them at) must describe it alike."""

# The API (prometheus_client).
HTTP_REQUESTS = "enroll_http_requests"  # method, route, status (the client library adds _total)
HTTP_DURATION = "enroll_http_request_duration_seconds"  # method, route
OUTBOX_OLDEST_UNSENT = "enroll_outbox_oldest_unsent_age_seconds"
OUTBOX_UNSENT = "enroll_outbox_unsent"
MAIL_FAILING = "enroll_mail_failing"
ENROLLMENTS = "enroll_enrollments"  # status

WORKER_SERIES = (
    ENROLLMENTS_CREATED,
    STATUS_TRANSITIONS,
    REMINDERS,
    ENROLLMENTS_EXPIRED,
    ENROLLMENTS_APPROVED,
    EMAILS_SENT,
    EMAILS_BOUNCED,
    EMAIL_FAILURES,
    FORM_COMPLETION,
)
API_SERIES = (f"{HTTP_REQUESTS}_total", HTTP_DURATION, OUTBOX_OLDEST_UNSENT, OUTBOX_UNSENT, MAIL_FAILING, ENROLLMENTS)

HOUR = 3600.0
FORM_COMPLETION_BUCKETS = [HOUR, 4 * HOUR, 12 * HOUR, 24 * HOUR, 48 * HOUR, 72 * HOUR, 7 * 24 * HOUR, 14 * 24 * HOUR]
"""Contacts take hours to days; the SDK's default buckets stop at seconds."""
