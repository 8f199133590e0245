"""MemberAccountWorkflow's handover to a fresh run, on the time-skipping test server: it turns updates away while
it hands over, as the enrollment does (a steady stream cannot hold it off); an update id applied in one run is
not applied again in the next; and its record counter goes on across runs (the store's version check needs it
to grow)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import cast

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.models import AccountView, AddUsersPurchased, UsageReport
from starter.services.temporal import run_update
from tests.workflows.account_test import Run, run
from tests.workflows.enrollment_test import CSM
from tests.workflows.handover_test import runs_of
from workflows.account import MemberAccountWorkflow
from workflows.common import CONTINUING_AS_NEW

__all__ = ["run"]  # the fixture, shared with account_test.py


async def test_an_account_turns_updates_away_while_it_hands_over(run: Run) -> None:
    """Before: an account due to hand over took every update, so a steady stream held the handover off."""
    handle = await run.start(400, events_per_run=3)
    now = await run.now()

    async def report(n: int) -> str:
        usage = UsageReport(users_existing=n, reported_at=now + timedelta(minutes=n))
        try:
            await handle.execute_update("report_usage", usage)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError), err
            return cause.type or ""
        return "applied"

    outcomes = []
    for wave in range(4):  # waves of updates that never pause
        outcomes += await asyncio.gather(*(report(wave * 10 + n) for n in range(1, 11)))
    assert set(outcomes) <= {"applied", CONTINUING_AS_NEW}, outcomes
    refused = outcomes.count(CONTINUING_AS_NEW)
    assert len(await runs_of(handle)) > 2
    assert refused >= 1, "some updates met a run that was handing over"
    order = AddUsersPurchased(actor=CSM, audit_note="order", add=100)
    view = await run_update(run.env.client, handle.id, MemberAccountWorkflow.add_users_purchased, order)
    assert view.users_purchased == 1100


async def test_an_accounts_record_counter_and_its_update_ids_go_on_across_runs(run: Run) -> None:
    handle = await run.start(400, events_per_run=3)
    order = AddUsersPurchased(actor=CSM, audit_note="order", add=100)
    first = cast(
        AccountView, await handle.execute_update(MemberAccountWorkflow.add_users_purchased, order, id="order-1")
    )
    assert first.users_purchased == 1100
    now = await run.now()
    for n in range(1, 8):
        report = UsageReport(users_existing=n, reported_at=now + timedelta(minutes=n))
        await run_update(run.env.client, handle.id, MemberAccountWorkflow.report_usage, report)
    assert len(await runs_of(handle)) > 1
    again = cast(
        AccountView, await handle.execute_update(MemberAccountWorkflow.add_users_purchased, order, id="order-1")
    )
    assert again.users_purchased == 1100, "the same order id is not added twice in the fresh run"
    keys = [r.event_key for r in run.fakes.records]
    assert len(keys) == len(set(keys))
    counters = [int(key.rpartition("/event-")[2]) for key in keys]
    assert counters == sorted(counters) and counters[-1] == len(keys), "one counter over every run"
    assert all(key.count("/") == 1 for key in keys), "keyed by workflow id, not by run"
