"""Heartbeating while an activity waits on work that cannot heartbeat itself: a thread reading a file, or a batch of
POSTs to slow receivers. A worker that dies stops the beats, and Temporal gives the activity to another worker
within its heartbeat timeout instead of its whole start-to-close timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(every: float) -> AsyncIterator[None]:
    """Heartbeat every `every` seconds while the block runs."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
