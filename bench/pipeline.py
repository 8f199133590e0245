"""How close the create pipeline runs to bare Temporal: `make bench` (`python -m bench.pipeline --help`).

Against a Temporal dev server **in memory** (`--temporal memory`: started here without a database file, the
stand-in for a production cluster) and one with a **file** database (`--temporal file`: the one `enroll up`
starts), on a fresh `enroll up` each time, in one run:

1. bare: a workflow of three no-op activities (`bench/bare.py`), its worker in this process, started with
   `execute_workflow` — N runs, C at a time;
2. real: the API and worker as `enroll up` runs them, from `POST /api/enrollments` until the invitation is
   accepted by this process's SMTP sink — N enrollments, C at a time;
3. bare again, to see the machine's drift.

Prints throughput, p50 and p99 of each (and of the POST alone), the ratios against the mean of the two bare legs,
the CPU time per run of each process (Temporal, worker, API, this benchmark), the history events and payload bytes
per enrollment against the bare run's, and each target with ✓ or ✗ (exit status 1 if any is ✗). In memory it also
sends creates at an open-loop 10 a second (random arrivals) for 30 s and times the API's answers, and runs the real
leg again with a second `enroll worker` process. A benchmark, not a test: nothing in `make test` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
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
    temporal_in_memory,
)
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import enrollment_workflow_id

FILE_TARGETS = {"throughput": 0.85, "p50": 1.5}
"""Against the dev server with a database file (`enroll up`'s): its single SQLite file is the ceiling."""
MEMORY_TARGETS = {"throughput": 0.6, "p50": 1.5, "p99": 2.0}
"""Against the dev server in memory, the stand-in for a production cluster (issue 21)."""
WORKER_CPU_TARGET = 2.0
"""The worker's CPU per create ≤ this × the bare leg's worker and client CPU per run (in memory)."""
API_CPU_TARGET_MS = 5.0
OPEN_LOOP_RATE = 10.0
OPEN_LOOP_SECONDS = 30.0
OPEN_LOOP_P50_MS = 60.0
OPEN_LOOP_P99_MS = 200.0
TOKENS = 4
"""CSMs creating, each with its own API token (one token is throttled at 600 requests a minute)."""


@dataclass
class Leg:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    ids: list[str] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    """The real legs: each POST's time to its answer (the rest is the invitation's way to the SMTP sink)."""

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99) if self.latencies else float("nan")

    def figures(self) -> str:
        return (
            f"{self.throughput:6.1f} /s   p50 {self.p50 * 1000:7.0f} ms   "
            f"p99 {self.p99 * 1000:7.0f} ms   errors {len(self.errors)}"
        )

    def line(self) -> str:
        return f"  {self.name:<28} {self.figures()}"


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


def create_body(run: str, i: int) -> dict[str, object]:
    return {
        "organization_name": f"Bench {run} Organization {i} Ltd",
        "member_type": "customer",
        "service_end_date": "2030-12-31",
        "display_users_purchased": True,
        "users_purchased": 100,
        "corporate_contact_email": f"contact{i}@bench-{run}.example",
    }


async def post_create(api: httpx.AsyncClient, tokens: list[str], run: str, i: int) -> str:
    """POST one create as CSM `i mod len(tokens)`; the enrollment's workflow id."""
    headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
    response = await api.post("/api/enrollments", json=create_body(run, i), headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
    return enrollment_workflow_id(str(response.json()["id"]))


async def real_leg(stack: Stack, sink: Sink, n: int, concurrency: int, name: str = "real: POST → invitation") -> Leg:
    run = secrets.token_hex(3)
    tokens = stack.csm_tokens(TOKENS)
    async with httpx.AsyncClient(base_url=stack.api, timeout=60) as api:
        answers: list[float] = []

        async def one(i: int) -> str:
            start = time.perf_counter()
            workflow_id = await post_create(api, tokens, run, i)
            answers.append(time.perf_counter() - start)
            await sink.arrival(f"contact{i}@bench-{run}.example", timeout=120)
            return workflow_id

        leg = await run_leg(name, n, concurrency, one)
        leg.answers = answers
        return leg


@dataclass
class OpenLoop:
    sent: int
    answers: list[float]
    errors: list[str]
    invited: int
    late: float


async def open_loop(stack: Stack, sink: Sink, rate: float, seconds: float) -> OpenLoop:
    """Creates arriving at random (a Poisson process of `rate` a second, a fixed seed) for `seconds`, however many
    are in flight: each POST's time to its answer, and whether its invitation arrives. The arrival times are
    fixed before the run; `late` is how far behind them the sender ever fell (it should stay near 0)."""
    run = secrets.token_hex(3)
    tokens = stack.csm_tokens(TOKENS)
    draw = random.Random(21)
    arrivals: list[float] = []
    at = draw.expovariate(rate)
    while at < seconds:
        arrivals.append(at)
        at += draw.expovariate(rate)
    answers: list[float] = []
    errors: list[str] = []
    invited = 0
    late = 0.0
    async with httpx.AsyncClient(base_url=stack.api, timeout=60, limits=httpx.Limits(max_connections=None)) as api:

        async def one(i: int) -> None:
            nonlocal invited
            start = time.perf_counter()
            try:
                await post_create(api, tokens, run, i)
            except Exception as err:  # noqa: BLE001 — a benchmark counts failures and goes on
                errors.append(f"{type(err).__name__}: {err}")
                return
            answers.append(time.perf_counter() - start)
            with contextlib.suppress(TimeoutError):
                await sink.arrival(f"contact{i}@bench-{run}.example", timeout=120)
                invited += 1

        began = time.perf_counter()
        tasks = []
        for i, offset in enumerate(arrivals):
            delay = began + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, -delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return OpenLoop(len(arrivals), answers, errors, invited, late)


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


class Meter:
    """CPU seconds used by each process (its role) between `start()` and `stop()`; the workers summed."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        roles = self.stack.roles()
        readings = {role: cpu_seconds(pid) for role, pid in roles.items() if role != "worker"}
        readings["worker"] = sum(cpu_seconds(pid) for pid in self.stack.worker_pids())
        return readings

    def start(self) -> Meter:
        self._began = self._read()
        return self

    def stop(self) -> dict[str, float]:
        ended = self._read()
        self.used = {role: ended[role] - self._began[role] for role in ("Temporal", "worker", "API", "benchmark")}
        return self.used


def cpu_line(name: str, used: dict[str, float], n: int) -> str:
    shares = ", ".join(f"{role} {seconds * 1000 / n:.0f}" for role, seconds in used.items())
    return f"  CPU ms per run, {name}: {shares}"


async def measure(n: int, concurrency: int, database_url: str | None, label: str, temporal: str) -> bool:
    memory = temporal == "memory"
    server = "in memory" if memory else "file database"
    with contextlib.ExitStack() as resources:
        sink = resources.enter_context(Sink())
        dev_server = resources.enter_context(temporal_in_memory()) if memory else None
        stack = resources.enter_context(enroll_up(sink.port, database_url=database_url, temporal=dev_server))
        client = await Client.connect(TEMPORAL_ADDRESS, data_converter=pydantic_data_converter)
        async with Worker(client, task_queue=BARE_TASK_QUEUE, workflows=[BareWorkflow], activities=[noop]):
            # A short warm-up of both paths, so neither pays for first imports and connections in its figures.
            await bare_leg(client, "warm-up", min(n, 10), concurrency)
            await real_leg(stack, sink, min(n, 10), concurrency, "warm-up")
            meter = Meter(stack).start()
            first = await bare_leg(client, "bare (3 no-op activities)", n, concurrency)
            cpu_bare = meter.stop()
            meter.start()
            real = await real_leg(stack, sink, n, concurrency)
            cpu_real = meter.stop()
            again = await bare_leg(client, "bare again", n, concurrency)
            bare_events, bare_bytes = await history_cost(client, first.ids, wait_invited=False)
            real_events, real_bytes = await history_cost(client, real.ids, wait_invited=True)
            loop: OpenLoop | None = None
            cpu_loop: dict[str, float] = {}
            two: Leg | None = None
            cpu_two: dict[str, float] = {}
            if memory:
                await asyncio.sleep(2)  # the last runs' tasks after their invitation
                meter.start()
                loop = await open_loop(stack, sink, OPEN_LOOP_RATE, OPEN_LOOP_SECONDS)
                cpu_loop = meter.stop()
                stack.add_worker()
                await real_leg(stack, sink, min(n, 10), concurrency, "warm-up")
                meter.start()
                two = await real_leg(stack, sink, n, concurrency, "real, two workers")
                cpu_two = meter.stop()

    print(f"\nPipeline on {label}: {n} creates, {concurrency} at a time, one Temporal dev server ({server})")
    for leg in (first, real, again):
        print(leg.line())
        if leg.answers:
            p50, p99 = statistics.median(leg.answers) * 1000, percentile(leg.answers, 99) * 1000
            print(f"  {'  of which the POST':<28}                p50 {p50:7.0f} ms   p99 {p99:7.0f} ms")
        for error in leg.errors[:3]:
            print(f"      {error}")
    bare_throughput = (first.throughput + again.throughput) / 2
    bare_p50 = (first.p50 + again.p50) / 2
    bare_p99 = (first.p99 + again.p99) / 2
    drift = abs(first.throughput - again.throughput) / bare_throughput
    print(f"  drift between the bare legs: {drift:.0%} in throughput")
    print(cpu_line("bare", cpu_bare, n))
    print(cpu_line("real", cpu_real, n))
    print(
        f"  history per run: real {real_events:.0f} events, {real_bytes / 1024:.1f} KiB of payloads; "
        f"bare {bare_events:.0f} events, {bare_bytes / 1024:.1f} KiB ({real_events / bare_events:.2f}× events, "
        f"{real_bytes / max(bare_bytes, 1):.1f}× bytes)"
    )
    targets = MEMORY_TARGETS if memory else FILE_TARGETS
    where = f"{label}, Temporal {server}"
    ratio = real.throughput / bare_throughput
    slower = real.p50 / bare_p50
    tail = real.p99 / bare_p99
    least = targets["throughput"]
    ok = target(f"throughput ≥ {least}× bare ({where})", f"{ratio:.2f}×", ratio >= least)
    ok &= target(f"p50 latency ≤ {targets['p50']}× bare ({where})", f"{slower:.2f}×", slower <= targets["p50"])
    if "p99" in targets:
        ok &= target(f"p99 latency ≤ {targets['p99']}× bare ({where})", f"{tail:.2f}×", tail <= targets["p99"])
    if memory:
        bare_own = cpu_bare["benchmark"] * 1000 / n  # the bare leg's worker and client: this process
        worker = cpu_real["worker"] * 1000 / n
        api = cpu_real["API"] * 1000 / n
        ok &= target(
            f"worker CPU per create ≤ {WORKER_CPU_TARGET:.0f}× bare worker+client ({bare_own:.0f} ms)",
            f"{worker:.0f} ms ({worker / bare_own:.2f}×)",
            worker <= WORKER_CPU_TARGET * bare_own,
        )
        ok &= target(f"API CPU per create ≤ {API_CPU_TARGET_MS:.0f} ms", f"{api:.1f} ms", api <= API_CPU_TARGET_MS)
    errors = sum(len(leg.errors) for leg in (first, real, again))
    ok &= target(f"no errors ({where})", f"{errors}", errors == 0)
    if loop is not None:
        print(
            f"\nThe API's answer at an open-loop {OPEN_LOOP_RATE:.0f} creates/s (random arrivals) for "
            f"{OPEN_LOOP_SECONDS:.0f} s, Temporal in memory: {loop.sent} sent, {loop.invited} invited, "
            f"{len(loop.errors)} errors, the sender at most {loop.late * 1000:.0f} ms behind its schedule"
        )
        for error in loop.errors[:3]:
            print(f"      {error}")
        print(cpu_line("open loop", cpu_loop, loop.sent))
        p50 = statistics.median(loop.answers) * 1000 if loop.answers else float("inf")
        p99 = percentile(loop.answers, 99) * 1000 if loop.answers else float("inf")
        ok &= target(f"POST /api/enrollments p50 ≤ {OPEN_LOOP_P50_MS:.0f} ms", f"{p50:.0f} ms", p50 <= OPEN_LOOP_P50_MS)
        ok &= target(f"POST /api/enrollments p99 ≤ {OPEN_LOOP_P99_MS:.0f} ms", f"{p99:.0f} ms", p99 <= OPEN_LOOP_P99_MS)
        complete = not loop.errors and loop.invited == loop.sent
        ok &= target("every open-loop create answered and invited", f"{loop.invited} of {loop.sent}", complete)
    if two is not None:
        print(f"\nScale-out: the same {n} creates, {concurrency} at a time, with one and with two worker processes")
        for workers, leg in (("one worker", real), ("two workers", two)):
            print(f"  {workers:<28} {leg.figures()}")
        print(cpu_line("two workers", cpu_two, n))
        for error in two.errors[:3]:
            print(f"      {error}")
        ok &= target("no errors with two workers", f"{len(two.errors)}", not two.errors)
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=150, help="runs per leg (default 150)")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight at once (default 20)")
    parser.add_argument(
        "--temporal",
        choices=("memory", "file"),
        action="append",
        help="the Temporal dev server in memory (and the open-loop and two-worker runs) or with a database file "
        "(as `enroll up` starts it); give it twice for both, which is the default",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run on PostgreSQL: a fresh database is created on this server for each run and dropped "
        "afterwards (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--postgres-only", action="store_true", help="skip the SQLite runs")
    args = parser.parse_args()
    ok = True
    for temporal in args.temporal or ["memory", "file"]:
        if not args.postgres_only:
            ok &= await measure(args.n, args.concurrency, None, "SQLite", temporal)
        if args.postgres:
            async with fresh_postgres(args.postgres) as url:
                ok &= await measure(args.n, args.concurrency, url, "PostgreSQL", temporal)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
