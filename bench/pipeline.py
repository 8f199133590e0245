"""How close the create pipeline runs to bare Temporal: `make bench` (`python -m bench.pipeline --help`).

On one fresh Temporal dev server with a file database (the one `enroll up` starts), in one run:

1. bare: a workflow of three no-op activities (`bench/bare.py`), its worker in this process, started with
   `execute_workflow` — N runs, C at a time;
2. real: the API and worker as `enroll up` runs them, from `POST /api/enrollments` until the invitation is
   accepted by this process's SMTP sink — N enrollments, C at a time;
3. bare again, to see the machine's drift.

Prints throughput, p50 and p99 of each, the ratios against the mean of the two bare legs, the history events
and payload bytes per enrollment against the bare run's, and each target with ✓ or ✗ (exit status 1 if any
is ✗). A benchmark, not a test: nothing in `make test` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.bare import BARE_TASK_QUEUE, BareWorkflow, noop
from bench.common import (
    TEMPORAL_ADDRESS,
    Sink,
    Stack,
    cpu_seconds,
    enroll_up,
    fresh_postgres,
    payload_bytes,
    percentile,
    target,
)
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import enrollment_workflow_id

THROUGHPUT_TARGET = 0.85
P50_TARGET = 1.5


@dataclass
class Leg:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    ids: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99) if self.latencies else float("nan")

    def line(self) -> str:
        return (
            f"  {self.name:<28} {self.throughput:6.1f} /s   p50 {self.p50 * 1000:7.0f} ms   "
            f"p99 {self.p99 * 1000:7.0f} ms   errors {len(self.errors)}"
        )


async def run_leg(name: str, n: int, concurrency: int, one: Callable[[int], Awaitable[str]]) -> Leg:
    leg = Leg(name)
    gate = asyncio.Semaphore(concurrency)

    async def timed(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                leg.ids.append(await one(i))
            except Exception as err:  # noqa: BLE001 — a benchmark counts failures and goes on
                leg.errors.append(f"{type(err).__name__}: {err}")
                return
            leg.latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(timed(i) for i in range(n)))
    leg.wall = time.perf_counter() - began
    return leg


async def bare_leg(client: Client, name: str, n: int, concurrency: int) -> Leg:
    run = secrets.token_hex(3)

    async def one(i: int) -> str:
        workflow_id = f"bench-bare-{run}-{i}"
        await client.execute_workflow(BareWorkflow.run, str(i), id=workflow_id, task_queue=BARE_TASK_QUEUE)
        return workflow_id

    return await run_leg(name, n, concurrency, one)


async def real_leg(stack: Stack, sink: Sink, n: int, concurrency: int) -> Leg:
    run = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=stack.api, headers=stack.auth, timeout=60) as api:

        async def one(i: int) -> str:
            contact = f"contact{i}@bench-{run}.example"
            body = {
                "organization_name": f"Bench {run} Organization {i} Ltd",
                "member_type": "customer",
                "service_end_date": "2030-12-31",
                "display_users_purchased": True,
                "users_purchased": 100,
                "corporate_contact_email": contact,
            }
            response = await api.post("/api/enrollments", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
            await sink.arrival(contact, timeout=120)
            return enrollment_workflow_id(str(response.json()["id"]))

        return await run_leg("real: POST → invitation", n, concurrency, one)


async def history_cost(client: Client, workflow_ids: list[str], *, wait_invited: bool) -> tuple[float, float]:
    """Mean history events and payload bytes per run, over up to 20 of them (the real runs once their
    `invited` event is recorded: the end of the first leg)."""
    sample = workflow_ids[:20]
    events: list[int] = []
    sizes: list[int] = []
    for workflow_id in sample:
        handle = client.get_workflow_handle(workflow_id)
        if wait_invited:
            for _ in range(100):
                view = await handle.query(EnrollmentWorkflow.status)
                if any(e.event == "invited" for e in view.timeline):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # the workflow task after the last write
        history = await handle.fetch_history()
        events.append(len(history.events))
        sizes.append(sum(payload_bytes(event) for event in history.events))
    return statistics.mean(events), statistics.mean(sizes)


async def measure(n: int, concurrency: int, database_url: str | None, label: str) -> bool:
    with Sink() as sink, enroll_up(sink.port, database_url=database_url) as stack:
        client = await Client.connect(TEMPORAL_ADDRESS, data_converter=pydantic_data_converter)
        async with Worker(client, task_queue=BARE_TASK_QUEUE, workflows=[BareWorkflow], activities=[noop]):
            # A short warm-up of both paths, so neither pays for first imports and connections in its figures.
            await bare_leg(client, "warm-up", min(n, 10), concurrency)
            await real_leg(stack, sink, min(n, 10), concurrency)
            roles = stack.roles()
            cpu = {role: cpu_seconds(pid) for role, pid in roles.items()}
            first = await bare_leg(client, "bare (3 no-op activities)", n, concurrency)
            cpu_bare = {role: cpu_seconds(pid) - cpu[role] for role, pid in roles.items()}
            cpu = {role: cpu_seconds(pid) for role, pid in roles.items()}
            real = await real_leg(stack, sink, n, concurrency)
            cpu_real = {role: cpu_seconds(pid) - cpu[role] for role, pid in roles.items()}
            again = await bare_leg(client, "bare again", n, concurrency)
            bare_events, bare_bytes = await history_cost(client, first.ids, wait_invited=False)
            real_events, real_bytes = await history_cost(client, real.ids, wait_invited=True)

    print(f"\nPipeline on {label}: {n} creates, {concurrency} at a time, one Temporal dev server (file database)")
    for leg in (first, real, again):
        print(leg.line())
        for error in leg.errors[:3]:
            print(f"      {error}")
    bare_throughput = (first.throughput + again.throughput) / 2
    bare_p50 = (first.p50 + again.p50) / 2
    drift = abs(first.throughput - again.throughput) / bare_throughput
    print(f"  drift between the bare legs: {drift:.0%} in throughput")
    for name, used in (("bare", cpu_bare), ("real", cpu_real)):
        shares = ", ".join(f"{role} {seconds * 1000 / n:.0f}" for role, seconds in used.items())
        print(f"  CPU ms per run, {name}: {shares}")
    print(
        f"  history per run: real {real_events:.0f} events, {real_bytes / 1024:.1f} KiB of payloads; "
        f"bare {bare_events:.0f} events, {bare_bytes / 1024:.1f} KiB ({real_events / bare_events:.2f}× events, "
        f"{real_bytes / max(bare_bytes, 1):.1f}× bytes)"
    )
    ratio = real.throughput / bare_throughput
    slower = real.p50 / bare_p50
    ok = target(f"throughput ≥ {THROUGHPUT_TARGET}× bare ({label})", f"{ratio:.2f}×", ratio >= THROUGHPUT_TARGET)
    ok &= target(f"p50 latency ≤ {P50_TARGET}× bare ({label})", f"{slower:.2f}×", slower <= P50_TARGET)
    errors = sum(len(leg.errors) for leg in (first, real, again))
    ok &= target(f"no errors ({label})", f"{errors}", errors == 0)
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=150, help="runs per leg (default 150)")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight at once (default 20)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run on PostgreSQL: a fresh database is created on this server and dropped afterwards "
        "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--postgres-only", action="store_true", help="skip the SQLite run")
    args = parser.parse_args()
    ok = True
    if not args.postgres_only:
        ok &= await measure(args.n, args.concurrency, None, "SQLite")
    if args.postgres:
        async with fresh_postgres(args.postgres) as url:
            ok &= await measure(args.n, args.concurrency, url, "PostgreSQL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
