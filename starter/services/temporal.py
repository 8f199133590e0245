"""How every service talks to Temporal: an update run to its answer (and through a run handing over to a fresh
one), a refusal turned into what the user is told, and a server out of reach turned into Unavailable (503)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.models import FieldError
from starter.services.errors import Conflict, InvalidInput, ServiceError, Unavailable, duplicate_message
from workflows.client import RPC_TIMEOUT
from workflows.common import CONTINUING_AS_NEW

WorkflowClass = TypeVar("WorkflowClass")
Arg = TypeVar("Arg")
Result = TypeVar("Result")
Status = TypeVar("Status")
Status_co = TypeVar("Status_co", covariant=True)
Action = TypeVar("Action")

UNREACHABLE = "The workflow service is unreachable at the moment; try again shortly."
NO_ANSWER = (
    "The workflow service did not answer in time, so the change may or may not have been made; "
    "check again shortly before you try again."
)


@contextlib.contextmanager
def unavailable_when_down() -> Iterator[None]:
    """Around a Temporal call: a server out of reach or too slow to answer becomes Unavailable (503).

    A timed-out update may still be applied, so it is never reported as refused (409) or gone (410)."""
    try:
        yield
    except RPCTimeoutOrCancelledError as err:
        raise Unavailable(NO_ANSWER) from err
    except RPCError as err:
        if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise Unavailable(NO_ANSWER) from err
        if err.status == RPCStatusCode.UNAVAILABLE:
            raise Unavailable(UNREACHABLE) from err
        raise
    except RuntimeError as err:
        if str(err).startswith("Failed client connect"):  # the API's client connects on first use
            raise Unavailable(UNREACHABLE) from err
        raise


def application_cause(err: WorkflowUpdateFailedError) -> ApplicationError | None:
    """The ApplicationError the workflow refused or failed the update with, however deep in the chain."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None)
    return cause if isinstance(cause, ApplicationError) else None


def refusal_from(err: WorkflowUpdateFailedError) -> ServiceError:
    """Map a refused or failed update to what the user is told."""
    cause = application_cause(err)
    if cause is None:
        return ServiceError(f"The enrollment could not be updated: {err.cause or err}")
    if cause.type == "InvalidEnrollment":
        details = cause.details[0] if cause.details else []
        return InvalidInput([FieldError.model_validate(d) for d in details])
    if cause.type == "OrganizationTaken":
        return Conflict(duplicate_message(str(cause.details[0]) if cause.details else "unknown"))
    return Conflict(cause.message)


Update = UpdateMethodMultiParam[[WorkflowClass, Arg], Awaitable[Result]]
"""An update method of a workflow class taking an Arg and answering a Result, e.g. `EnrollmentWorkflow.resend`.
(The workflows name their handlers, so the type checker sees each return an awaitable of its result.)"""


HANDOVER_RETRIES = 20
"""How often an update turned away by a run handing over to a fresh one is tried again (about 4 s in all)."""


async def run_update(client: Client, workflow_id: str, update: Update[Any, Arg, Result], arg: Arg) -> Result:
    """Execute `update` with `arg`; a refusal or a finished run becomes the Conflict the user is shown. An update
    that arrives while the run continues as new is tried again: it lands on the fresh run. Every attempt carries
    the same update id, so a retried update is one update (the workflow dedupes a redelivered id)."""
    handle = client.get_workflow_handle(workflow_id)
    update_id = str(uuid.uuid4())
    for attempt in range(HANDOVER_RETRIES + 1):
        try:
            with unavailable_when_down():
                return cast(Result, await handle.execute_update(update, arg, id=update_id, rpc_timeout=RPC_TIMEOUT))
        except WorkflowUpdateFailedError as err:
            cause = application_cause(err)
            if cause is not None and cause.type == CONTINUING_AS_NEW and attempt < HANDOVER_RETRIES:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise refusal_from(err) from err
        except RPCError as err:
            if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise
            # The run it reached may have just continued as new ("already completed"): the fresh run takes it.
            if attempt < HANDOVER_RETRIES and await _running(handle):
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise Conflict("This has ended; it can no longer change.") from err
    raise AssertionError("unreachable")


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow's latest run is still running."""
    try:
        with unavailable_when_down():
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError:
        return False
    return description.status == WorkflowExecutionStatus.RUNNING


class HasStatus(Protocol[Status_co]):
    """A record as the store has it (an enrollment, a member account): what its status machine is asked about."""

    @property
    def status(self) -> Status_co: ...


@dataclass(frozen=True)
class CheckedUpdates(Generic[Status, Action]):
    """How a service changes one kind of record through its workflow: the record is looked up (`lookup`, its
    NotFound for an unknown id), its status machine asked first (fast, and right for a finished run: its
    sentence is the Conflict), then the workflow, which decides (`run_update`)."""

    client: Client
    lookup: Callable[[str], Awaitable[HasStatus[Status]]]
    refusal: Callable[[Status, Action], str | None]
    workflow_id: Callable[[str], str]

    async def run(self, record_id: str, action: Action, update: Update[Any, Arg, Result], arg: Arg) -> Result:
        current = await self.lookup(record_id)
        refusal = self.refusal(current.status, action)
        if refusal:
            raise Conflict(refusal)
        return await run_update(self.client, self.workflow_id(record_id), update, arg)
