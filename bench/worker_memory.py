"""The worker's memory with many enrollments waiting for their form: `make bench`
(`python -m bench.worker_memory --help`).

On `enroll up` (the default 14-day form deadline, so every enrollment stays waiting), creates enrollments through
the API up to each step (100, 1,000, 10,000 by default); once every invitation has been accepted by the SMTP
sink and the runs have settled, reads the resident memory (RSS) of the worker, the API and the Temporal dev
server. The target: the worker at the last step within 300 MB, which `worker.WORKFLOW_CACHE` (the runs the
worker keeps in memory between their tasks) is sized for.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time

import httpx

from bench.common import Sink, enroll_up, rss_mb, target
from worker import WORKFLOW_CACHE

TARGET_MB = 300.0


TOKENS = 4
"""CSMs creating at once, each with its own API token: one token is throttled at 600 requests a minute
(README "For partners"), slower than this bench creates; a 429 is waited out as its Retry-After says."""


async def create(api: httpx.AsyncClient, run: str, numbers: range, concurrency: int, tokens: list[str]) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(i: int) -> None:
        body = {
            "organization_name": f"Waiting {run} Organization {i} Ltd",
            "member_type": "customer",
            "service_end_date": "2030-12-31",
            "display_users_purchased": False,
            "corporate_contact_email": f"contact{i}@waiting-{run}.example",
        }
        headers = {"Idempotency-Key": f"{run}-{i}", "Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        async with gate:
            last = ""
            tries = 0
            while tries < 3:  # a 503 under load may or may not have started it: the Idempotency-Key finds out
                try:
                    response = await api.post("/api/enrollments", json=body, headers=headers)
                except httpx.HTTPError as err:
                    last = f"{type(err).__name__}: {err}"
                    tries += 1
                    continue
                if response.status_code in (200, 201):
                    return
                if response.status_code == 429:  # throttled: wait as told, as any client should
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                last = f"{response.status_code}: {response.text[:120]}"
                tries += 1
            errors.append(last)

    await asyncio.gather(*(one(i) for i in numbers))
    return errors


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", default="100,1000,10000", help="enrollments waiting at each reading")
    parser.add_argument("--concurrency", type=int, default=20, help="creates in flight at once (default 20)")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]
    run = secrets.token_hex(3)
    readings: list[tuple[int, dict[str, float], float]] = []
    failures: list[str] = []
    with Sink() as sink, enroll_up(sink.port) as stack:
        roles = stack.roles()
        roles.pop("benchmark")
        baseline = {role: rss_mb(pid) for role, pid in roles.items()}
        tokens = stack.csm_tokens(TOKENS)
        async with httpx.AsyncClient(base_url=stack.api, timeout=120) as api:
            done = 0
            for step in steps:
                began = time.perf_counter()
                failures += await create(api, run, range(done, step), args.concurrency, tokens)
                deadline = time.monotonic() + 300
                while len(sink.arrived) < step and time.monotonic() < deadline:  # noqa: ASYNC110 — another thread
                    await asyncio.sleep(0.5)
                await asyncio.sleep(10)  # the last invitations' `invited` records, and the sticky cache settles
                readings.append((step, {role: rss_mb(pid) for role, pid in roles.items()}, time.perf_counter() - began))
                done = step
                print(f"  {step:>6} waiting: " + ", ".join(f"{r} {mb:.0f} MB" for r, mb in readings[-1][1].items()))
    print(f"\nWorker memory with enrollments waiting for their form (workflow cache: {WORKFLOW_CACHE} runs)")
    print(f"  {'waiting':>8}  {'worker':>9}  {'API':>7}  {'Temporal':>9}  {'invited':>8}")
    print(f"  {'0':>8}  {baseline['worker']:7.0f} MB  {baseline['API']:5.0f} MB  {baseline['Temporal']:7.0f} MB")
    for step, mb, _ in readings:
        print(f"  {step:>8,}  {mb['worker']:7.0f} MB  {mb['API']:5.0f} MB  {mb['Temporal']:7.0f} MB  {step:>8,}")
    last_step, last, _ = readings[-1]
    ok = target(
        f"worker RSS ≤ {TARGET_MB:.0f} MB at {last_step:,} waiting",
        f"{last['worker']:.0f} MB",
        last["worker"] <= TARGET_MB,
    )
    ok &= target(
        "every create answered and every invitation arrived",
        f"{len(sink.arrived):,} of {last_step:,}",
        len(sink.arrived) >= last_step and not failures,
    )
    for failure in failures[:5]:
        print(f"      {failure}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
