"""What every way in does with a member administrator's invitation: invite (the user's row and the
AdministratorWorkflow that emails the link), resend, and tell the workflow the link was used.

The store keeps the administrators; each invitation is one workflow run, `administrator-<user id>`, started here
or by the account's workflow at approval. No address and no token is handed to Temporal: the run works by user id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.models import (
    SYSTEM,
    AccountView,
    Actor,
    AdministratorInput,
    AdministratorStatus,
    AdministratorView,
    InvitationAction,
)
from domain.settings import Settings
from starter.services.errors import Conflict, NotFound, Unavailable
from starter.services.temporal import application_cause, refusal_from, unavailable_when_down
from store import administrators, users
from store.administrators import Administrator
from workflows.administrator import INVITATION_CLOSED, REFUSALS, AdministratorWorkflow
from workflows.client import COURTESY_TIMEOUT, RPC_TIMEOUT
from workflows.names import administrator_workflow_id

log = logging.getLogger(__name__)
CLOSING_WAIT = 5.0
"""Seconds a resend waits for a run that is just ending (its resend window closed) before starting the next."""


class AdministratorService:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.effective_database_url

    async def invite(self, account: AccountView, email: str, actor: Actor) -> Administrator:
        """A new administrator of `account`, emailed an activation link by a workflow of its own. An address that
        already has a user is refused with the store's `UserError`. If the workflow cannot be started the row is
        disabled (no row without a workflow) and the error raised: enabling and resending revives it."""
        user = await administrators.invite(
            self.url, account_id=account.id, member_type=account.member_type, email=email, by=actor
        )
        try:
            await self.start_invitation(user.id, account.id, actor, link_version=1)
        except Exception:
            await administrators.set_disabled(self.url, account.id, user.id, True, by=SYSTEM)
            raise
        return await self._administrator(account.id, user.id)

    async def resend(self, account_id: str, user_id: str, actor: Actor) -> Administrator:
        """A new link (the old one dies) with a fresh deadline, for an Invited or Expired administrator: the open
        run takes it, or, once the run has ended, a new run starts at the next link version. A refusal is a
        Conflict with the sentence."""
        current = await self._administrator(account_id, user_id)
        if not await self._resend_to_open_run(user_id, InvitationAction(actor=actor)):
            status = AdministratorStatus.active if current.status == AdministratorStatus.locked else current.status
            if status in REFUSALS:
                raise Conflict(REFUSALS[status])
            user = await users.user_by_id(self.url, user_id)
            assert user is not None
            try:
                await self.start_invitation(user_id, account_id, actor, link_version=user.invitation_version + 1)
            except WorkflowAlreadyStartedError as err:  # the ending run has not closed yet
                raise Conflict("The invitation is being updated; try again in a moment.") from err
        return await self._administrator(account_id, user_id)

    async def notify_activated(self, user_id: str) -> None:
        """Tell the invitation's run the link was used. A courtesy: the store already says so, and the run asks
        it at its next step, so activation never fails for this (a warning is logged, by user id only)."""
        handle = self.client.get_workflow_handle_for(AdministratorWorkflow.run, administrator_workflow_id(user_id))
        try:
            async with asyncio.timeout(COURTESY_TIMEOUT.total_seconds()):
                with unavailable_when_down():
                    await handle.signal(AdministratorWorkflow.activated, rpc_timeout=COURTESY_TIMEOUT)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # not found: the run has ended, nothing to tell
                log.warning("administrator %s activated; its invitation's run was not told (%s)", user_id, err.status)
        except (TimeoutError, Unavailable):
            log.warning(
                "administrator %s activated; Temporal is unreachable, its invitation's run was not told", user_id
            )

    async def start_invitation(self, user_id: str, account_id: str, actor: Actor, *, link_version: int) -> None:
        """Start the run that invites the administrator at `link_version` (1 at first; one more than the user's
        last after a run has ended)."""
        invitation = AdministratorInput(
            user_id=user_id,
            account_id=account_id,
            invited_by=actor,
            activation_ttl=self.settings.activation_ttl.total_seconds(),
            reminder_after=self.settings.activation_reminder.total_seconds(),
            link_version=link_version,
        )
        with unavailable_when_down():
            await self.client.start_workflow(
                AdministratorWorkflow.run,
                invitation,
                id=administrator_workflow_id(user_id),
                task_queue=self.settings.task_queue,
                static_summary=f"Administrator invitation · account {account_id}",
                rpc_timeout=RPC_TIMEOUT,
            )

    async def _resend_to_open_run(self, user_id: str, action: InvitationAction) -> bool:
        """True when an open run took the resend; False when none is open (or the open one is just ending)."""
        handle = self.client.get_workflow_handle_for(AdministratorWorkflow.run, administrator_workflow_id(user_id))
        try:
            with unavailable_when_down():
                # The typed handle takes the update's result for a coroutine: the cast says what it is.
                cast(
                    AdministratorView,
                    await handle.execute_update(AdministratorWorkflow.resend, action, rpc_timeout=RPC_TIMEOUT),
                )
        except WorkflowUpdateFailedError as err:
            cause = application_cause(err)
            if cause is None or cause.type != INVITATION_CLOSED:
                raise refusal_from(err) from err
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSING_WAIT):
                    await handle.result(follow_runs=False)
            return False
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return False
            raise
        return True

    async def _administrator(self, account_id: str, user_id: str) -> Administrator:
        administrator = await administrators.get_administrator(self.url, account_id, user_id)
        if administrator is None:
            raise NotFound("No administrator of this account has that id.")
        return administrator
