"""The mailer of EnrollmentWorkflow and MemberAccountWorkflow: the emails a run queues, sent one by one outside
its lock, so a slow or refusing relay never holds up a handler and no email failure ends the run.

Relay trouble retries inside the activity (for as long as it takes). What the relay answered for good comes back
to the workflow through two callbacks: `sent` (the email went; some recipients may have been refused) and
`failed` (a permanent failure: a bounce of its one recipient, or another error). An email whose link died
before it went (`stale`) is never sent; one on its way when that happens is cancelled.

When its run hands over to a fresh one, `pending()` is what the fresh run sends: the email on its way first
(its activity id makes the send idempotent, so one the relay took before the handover is not sent again), then
the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.enrollment import EnrollmentActivities
    from domain.models import EmailRequest, EmailResult, MailProblem, QueuedEmail
    from workflows.common import EMAIL_TIMEOUT, RETRY

MailActivity = Callable[[EnrollmentActivities, EmailRequest], Awaitable[EmailResult]]

SENDERS: dict[str, MailActivity] = {
    "send_invitation": EnrollmentActivities.send_invitation,
    "send_email": EnrollmentActivities.send_email,
}
"""The activity of each `QueuedEmail.sender` (an invitation opens its form link before it goes)."""


def refusals_of(mail: QueuedEmail, result: EmailResult) -> list[MailProblem]:
    """The recipients the relay refused for good while it took the email for the others."""
    problems = []
    for refusal in result.refused:
        address, _, reply = refusal.partition(": ")
        problems.append(
            MailProblem(kind=mail.request.kind, recipient=address, reason=reply, link_version=mail.request.link_version)
        )
    return problems


def problem_of(mail: QueuedEmail, err: ActivityError) -> MailProblem | None:
    """The permanent failure an email activity ended with; None when it was cancelled (its link died)."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return None
    request = mail.request
    recipient = request.to[0] if request.to else ""
    if isinstance(cause, ApplicationError) and cause.type == "SmtpRecipientRefused" and len(cause.details) > 1:
        return MailProblem(
            kind=request.kind, recipient=recipient, reason=str(cause.details[1]), link_version=request.link_version
        )
    reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return MailProblem(
        kind=request.kind,
        recipient=recipient,
        reason=reason,
        bounced=False,
        event="failed",
        link_version=request.link_version,
    )


def _never(mail: QueuedEmail) -> bool:
    return False


class Mailer:
    """One run's outgoing emails. `run()` is the send loop (a task of the workflow); the workflow queues with
    `queue()`, asks `idle()` before it ends or hands over, and `drop_stale()` when a link dies."""

    def __init__(
        self,
        *,
        sent: Callable[[QueuedEmail, EmailResult], Awaitable[None]],
        failed: Callable[[MailProblem], Awaitable[None]],
        stale: Callable[[QueuedEmail], bool] = _never,
        queued: Iterable[QueuedEmail] = (),
    ) -> None:
        self._sent = sent
        self._failed = failed
        self._stale = stale
        self._queue: list[QueuedEmail] = list(queued)
        self._sending: tuple[QueuedEmail, workflow.ActivityHandle[EmailResult]] | None = None
        self._cancelling = False
        self._reporting = False

    def queue(self, mail: QueuedEmail) -> None:
        self._queue.append(mail)

    def idle(self) -> bool:
        return not self._queue and self._sending is None

    def settled(self) -> bool:
        """Not reporting an outcome to the workflow (a report writes the timeline under the workflow's lock)."""
        return not self._reporting

    def pending(self) -> list[QueuedEmail]:
        """What is still to send, the email on its way first: the fresh run's queue at a handover."""
        on_its_way = [self._sending[0]] if self._sending is not None else []
        return [*on_its_way, *self._queue]

    def drop_stale(self) -> None:
        """Forget the queued emails whose link died, and cancel the one on its way if its link died too."""
        self._queue = [mail for mail in self._queue if not self._stale(mail)]
        if self._sending is not None and self._stale(self._sending[0]):
            self._cancelling = True
            self._sending[1].cancel()

    async def run(self) -> None:
        """Send the queued emails one by one; relay trouble retries inside the activity."""
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            mail = self._queue.pop(0)
            if self._stale(mail):
                continue
            handle = workflow.start_activity_method(
                SENDERS[mail.sender],
                mail.request,
                activity_id=mail.activity_id,
                start_to_close_timeout=EMAIL_TIMEOUT,
                retry_policy=RETRY,
            )
            self._sending = (mail, handle)
            try:
                result = await handle
            except ActivityError as err:
                problem = problem_of(mail, err)
                if problem is not None:
                    self._reporting = True
                    await self._failed(problem)
            except asyncio.CancelledError:
                if not self._cancelling:
                    raise
            else:
                self._reporting = True
                await self._sent(mail, result)
            finally:
                self._sending = None
                self._cancelling = False
                self._reporting = False
