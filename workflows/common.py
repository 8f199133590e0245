"""What EnrollmentWorkflow and MemberAccountWorkflow share: their patches, retry policy and timeouts, the wait for
a change, the refusal of an update, and the memory of the updates they applied (their mailer is `mailer.py`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

BEST_EFFORT_MAIL = "best-effort-mail"
"""The patch that took email off the process's critical path: runs started before it keep their old shape."""
LEAN_STORE_WRITES = "lean-store-writes"
"""The patch that made the create's check and first write (validate, persist) local activities and stopped
upserting search attributes that did not change: a create answers after one workflow task instead of three.
Runs started before it keep their old shape."""
CARRIED_HANDOVER = "carried-handover"
"""The patch that made a handover to a fresh run carry what the run was doing instead of waiting for it: the
emails not yet sent (a relay outage no longer holds the handover, and with it every update, reminder and expiry)
and the ids of the updates applied (one delivered again to the fresh run is not applied twice). With it the
account turns updates away while it hands over, as the enrollment does, and its records carry a version that
grows across runs. Runs started before it keep their old shape."""
STALE_BOUNCES_IGNORED = "stale-bounces-ignored"
"""The patch after which a bounce of an invitation or reminder whose link version is no longer the enrollment's
current one is recorded on the timeline instead of marking the current invitation Bounced."""
CHECKED_WITH_FIRST_WRITE = "checked-with-first-write"
"""The patch after which a new enrollment's fields are checked by its first write (`persist`, one local activity,
the organization name claimed in the write's own transaction) instead of by a `validate` before it: one local
activity and one store transaction fewer before the API's create answers."""
CONTINUING_AS_NEW = "ContinuingAsNew"
"""The error type of an update turned away while its run hands over to a fresh one: retry it, it lands there."""
RECORD_TIMEOUT = timedelta(seconds=30)
EMAIL_TIMEOUT = timedelta(seconds=90)
HANDOVER_MAIL_WAIT = timedelta(seconds=5)
"""How long a run that is due to hand over waits for the email on its way before it hands it over unsent: long
enough for a relay that answers, short enough that the ways in (which retry an update turned away for about ten
seconds) land theirs on the fresh run."""
UPDATES_REMEMBERED = 200
"""How many applied update ids a run remembers and carries into the fresh one."""
# Transient failures (store locked, SMTP down) retry for as long as it takes, backing off to a minute.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)


def refuse(reason: str | None) -> None:
    """Refuse an update with `reason` (the status machine's sentence, or the rule's): a non-retryable
    `TransitionRefused`, which the ways in answer with a 409. No reason, no refusal."""
    if reason:
        raise ApplicationError(reason, type="TransitionRefused", non_retryable=True)


def refuse_while_handing_over(draining: bool, what: str) -> None:
    """Turn an update away with `ContinuingAsNew` while the run hands over to a fresh one (the ways in retry it
    there), so a steady stream of updates cannot keep the run growing."""
    if draining:
        raise ApplicationError(
            f"This {what} is moving to a fresh run; try again in a moment.", type=CONTINUING_AS_NEW, non_retryable=True
        )


async def changed_within(epoch: Callable[[], int], timeout: timedelta | None, label: str | None) -> bool:
    """True when a handler moved the process on (bumped its epoch) before `timeout` (None: wait as long as it takes).
    The label is the timer's summary in the Temporal UI."""
    start = epoch()
    try:
        await workflow.wait_condition(lambda: epoch() != start, timeout=timeout, timeout_summary=label)
    except TimeoutError:
        return False
    return True


class _RemembersUpdates(Protocol):
    _updates: list[str] | None
    """The ids of the updates applied (None: a run started before CARRIED_HANDOVER remembers none)."""

    def status(self) -> Any: ...


W = TypeVar("W", bound=_RemembersUpdates)
Arg = TypeVar("Arg")
Result = TypeVar("Result")


def _applied(instance: _RemembersUpdates) -> str | None:
    """The current update's id when this run (or the one before it) already applied it."""
    info = workflow.current_update_info()
    if instance._updates is None or info is None or info.id not in instance._updates:
        return None
    return info.id


def applied_once(
    handler: Callable[[W, Arg], Coroutine[Any, Any, Result]],
) -> Callable[[W, Arg], Coroutine[Any, Any, Result]]:
    """An update handler that applies each update id once. An update completed in the workflow task that
    continued the run as new can be delivered again to the fresh run (temporalio/temporal#6375); there it answers
    with the current state instead of resending or adding again. Put it under `@workflow.update`."""

    @functools.wraps(handler)
    async def once(self: W, arg: Arg) -> Result:
        if _applied(self) is not None:
            return self.status()  # type: ignore[no-any-return]
        result = await handler(self, arg)
        info = workflow.current_update_info()
        if self._updates is not None and info is not None:
            self._updates.append(info.id)
            del self._updates[:-UPDATES_REMEMBERED]
        return result

    return once


def checked_once(validator: Callable[[W, Arg], None]) -> Callable[[W, Arg], None]:
    """The validator of an `applied_once` handler: an update applied already is let through to its answer."""

    @functools.wraps(validator)
    def check(self: W, arg: Arg) -> None:
        if _applied(self) is None:
            validator(self, arg)

    return check
