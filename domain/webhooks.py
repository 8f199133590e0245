"""Events and webhooks: the event types other systems receive, the delivery schedule, and the models the
WebhookEndpointWorkflow and its activities pass (ids and times only: never a URL's secret, an event's data or a
signing key, which stay in the store).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field

from domain.models import Frozen


class EventType(StrEnum):
    enrollment_created = "enrollment.created"
    enrollment_invited = "enrollment.invited"
    enrollment_bounced = "enrollment.bounced"
    enrollment_reminded = "enrollment.reminded"
    enrollment_expired = "enrollment.expired"
    enrollment_submitted = "enrollment.submitted"
    enrollment_review_started = "enrollment.review_started"
    enrollment_approved = "enrollment.approved"
    enrollment_rejected = "enrollment.rejected"
    enrollment_cancelled = "enrollment.cancelled"
    enrollment_deleted = "enrollment.deleted"
    account_activated = "account.activated"
    account_changed = "account.changed"
    account_users_purchased_changed = "account.users_purchased_changed"
    account_service_ending = "account.service_ending"
    account_suspended = "account.suspended"
    account_reactivated = "account.reactivated"
    account_expired = "account.expired"
    account_deleted = "account.deleted"
    administrator_activated = "administrator.activated"
    credential_batch_imported = "credential_batch.imported"
    credential_batch_rejected = "credential_batch.rejected"


ALL_EVENTS = "*"
"""An endpoint's `events: ["*"]`: every type, including types added later."""

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""After the first attempt fails, the next ones come this long after the one before (Standard Webhooks' schedule):
eight attempts over about 28 hours, then the delivery is Failed."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DISABLE_AFTER = timedelta(days=5)
"""An endpoint that has failed every attempt for this long is disabled, and its owner emailed."""
SECRET_OVERLAP = timedelta(hours=24)
"""After a rotation, the previous secret signs too for this long."""
ATTEMPT_TIMEOUT = timedelta(seconds=15)
"""How long one POST may take, connecting included."""


def next_attempt_delay(attempts_made: int) -> timedelta | None:
    """How long after the `attempts_made`-th failed attempt the next comes; None once every retry is spent."""
    if attempts_made < 1 or attempts_made > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts_made - 1]


class EndpointStatus(StrEnum):
    enabled = "Enabled"
    failing = "Failing"
    disabled = "Disabled"


class DeliveryStatus(StrEnum):
    pending = "Pending"
    succeeded = "Succeeded"
    failed = "Failed"
    cancelled = "Cancelled"


class PendingDelivery(Frozen):
    """A delivery the endpoint's run still has to attempt: how many attempts it has had, and when the next is due."""

    delivery_id: str
    attempts: int = 0
    due_at: datetime | None = None
    """None: now."""
    replay: bool = False
    """One attempt asked for from the API or portal, outside the schedule."""


class WebhookEndpointInput(Frozen):
    """A WebhookEndpointWorkflow's start, or the state one run hands to the next (continue-as-new)."""

    endpoint_id: str
    cursor: int
    """The newest event `seq` already turned into deliveries for this endpoint."""
    status: EndpointStatus = EndpointStatus.enabled
    failing_since: datetime | None = None
    pending: tuple[PendingDelivery, ...] = ()
    updates: tuple[str, ...] = ()
    """The ids of the last updates applied (one delivered again to the next run is not applied twice)."""
    history_limit: int = Field(default=4000, ge=20)
    """History events after which the run hands over to a fresh one (well below Temporal's limits)."""


class DeliverNewEvents(Frozen):
    """Wait for events after the cursor that the endpoint receives, make their deliveries and attempt each once."""

    endpoint_id: str
    after: int
    limit: int = Field(default=100, ge=1, le=1000)
    wait_seconds: float = Field(default=60.0, ge=0)
    """How long to wait for a new event before answering with none."""
    failing: bool = False
    """The run shows the endpoint Failing: answer after the first delivery, so it is shown Enabled again."""


class FailedDelivery(Frozen):
    """A delivery whose attempt did not deliver it: the run schedules its next attempt (or, for a 410, disables)."""

    delivery_id: str
    attempts: int
    """The attempts it has had, this one included."""
    status_code: int | None = None
    gone: bool = False
    error: str | None = None


class NewEventsDelivered(Frozen):
    """What one wait-and-deliver came to: the cursor past the events it took, how many were delivered at the first
    attempt, and those that were not."""

    cursor: int
    delivered: int = 0
    failed: tuple[FailedDelivery, ...] = ()
    endpoint_gone: bool = False


class AttemptDelivery(Frozen):
    """One more attempt of one delivery: a retry on the schedule, or a replay."""

    endpoint_id: str
    delivery_id: str
    number: int
    """This attempt's number (1 for the first); for a replay, the store's count + 1 is taken instead."""
    replay: bool = False


class AttemptOutcome(Frozen):
    """What one POST came to: 2xx is delivered; 410 asks us to stop for good; anything else is retried."""

    delivered: bool
    status_code: int | None = None
    gone: bool = False
    error: str | None = None
    """Why no answer came (refused address, timeout, connection refused), without a secret."""
    skipped: bool = False
    """The delivery or endpoint no longer exists (deleted, pruned): nothing was sent."""


class EndpointStatusChange(Frozen):
    endpoint_id: str
    status: EndpointStatus
    reason: str | None = None
    failing_since: datetime | None = None


class EnableEndpoint(Frozen):
    """PATCH /api/webhook-endpoints/{id} `{"enabled": …}`: turn deliveries back on (from new events) or off."""

    enabled: bool
    update_id: str | None = None


class ReplayDelivery(Frozen):
    delivery_id: str


class RemoveEndpoint(Frozen):
    """DELETE /api/webhook-endpoints/{id}: the run cancels what is pending and ends."""

    reason: str = "deleted"


class WebhookEndpointState(Frozen):
    """The `status` query's answer."""

    endpoint_id: str
    status: EndpointStatus
    cursor: int
    pending: int
    in_flight: int
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
