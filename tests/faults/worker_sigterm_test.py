"""A worker sent SIGTERM (a deploy, a pod evicted) while an email is in the relay's hands: it stops polling,
lets the send finish within `worker.GRACEFUL_SHUTDOWN`, or else hands it back to be retried elsewhere; either
way it exits on its own, in time, and the contact gets one invitation."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from store import outbox
from tests.faults.conftest import SETTLE, eventually
from tests.faults.relay import Relay
from tests.faults.worker_processes import Workers, worker_stack
from tests.integration.conftest import VALID
from worker import GRACEFUL_SHUTDOWN

CONTACT = str(VALID["corporate_contact_email"])
EXIT_WITHIN = GRACEFUL_SHUTDOWN.total_seconds() + 8  # the grace, and the process's own start-up and shut-down


@pytest_asyncio.fixture
async def setup(
    tmp_path: Path, temporal: WorkflowEnvironment, relay: Relay, task_queue: str
) -> AsyncIterator[tuple[Workers, httpx.AsyncClient, dict[str, str]]]:
    try:
        async with worker_stack(tmp_path, temporal, relay.port, task_queue) as stack:
            yield stack
    finally:
        relay.accept()


async def stopped_by_sigterm(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, then the seconds until the process exits (it must exit 0, on its own)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        assert time.monotonic() - started < EXIT_WITHIN, f"the worker did not exit within {EXIT_WITHIN:.0f} s"
        await asyncio.sleep(0.1)
    assert process.returncode == 0
    return time.monotonic() - started


@pytest.mark.parametrize("relay_answers_in_time", [True, False], ids=["send-finishes", "send-handed-back"])
async def test_sigterm_lets_the_send_in_flight_finish_or_hands_it_back(
    setup: tuple[Workers, httpx.AsyncClient, dict[str, str]], relay: Relay, relay_answers_in_time: bool
) -> None:
    workers, api, auth = setup
    url = workers.settings.effective_database_url
    relay.stall("DATA")
    first = workers.start()
    response = await api.post("/api/enrollments", json=VALID, headers=auth)
    assert response.status_code == 201, response.text
    enrollment_id = response.json()["id"]
    await eventually(lambda: relay.stalled_now == 1, timeout=60, what="the invitation held at DATA")

    if relay_answers_in_time:
        asyncio.get_running_loop().call_later(2.0, relay.release)
    took = await stopped_by_sigterm(first)
    assert "worker stopping" in workers.log(0)
    if relay_answers_in_time:
        # The send finished inside the grace period, on the worker that started it, and was recorded.
        assert took < GRACEFUL_SHUTDOWN.total_seconds(), took
        assert len(relay.messages_to(CONTACT)) == 1
        assert await outbox.sent_result(url, f"enrollment-{enrollment_id}/invite-1") is not None
    else:
        # The relay still holds it: the attempt was cancelled at the end of the grace period, nothing was sent.
        assert took >= GRACEFUL_SHUTDOWN.total_seconds() - 0.5, took
        assert relay.messages() == []
        relay.accept()

    workers.start()  # the next worker carries the enrollment on

    async def invited() -> bool:
        body = (await api.get(f"/api/enrollments/{enrollment_id}", headers=auth)).json()
        return bool(body["invitation_sent_at"])

    await eventually(invited, timeout=90, what="the invitation recorded")
    await asyncio.sleep(SETTLE)
    assert len(relay.messages_to(CONTACT)) == 1
