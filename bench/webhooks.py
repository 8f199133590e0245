"""How fast a state change reaches a webhook receiver, signed: `make bench` (`python -m bench.webhooks --help`).

On `enroll up` (the embedded Temporal dev server, the worker and the API, `ENROLL_WEBHOOKS_ALLOW_PRIVATE=true` as
the dev stack sets it), three receivers in this process (HTTP servers on 127.0.0.1, each verifying every signature
with the reference `standardwebhooks` library) are registered as three endpoints, for every event
(`POST /api/webhook-endpoints`, an admin's token). Then N enrollments are created the way `bench/pipeline.py`
creates them (`POST /api/enrollments`, C at a time, each until the SMTP sink accepts its invitation): each records
two state changes, `enrollment.created` and, once the invitation is sent, `enrollment.invited`, so 500 creates
make 1,000 changes. The changes counted are exactly the events `GET /api/events` lists after a warm-up, whatever
their type; every one of them is expected once at each endpoint.

A delivery's latency is its receipt at the receiver (the body read and its signature verified) minus its event's
`created_at` (when the change happened, as the store has it); both clocks are this machine's. Lost: an event
expected at an endpoint that no verified delivery brought within `--deadline` seconds after the last change.
Duplicate: the same event received again at the same endpoint; its `webhook-id` must be the first one's.

Targets: p50 ≤ 1 s and p99 ≤ 5 s over every endpoint's deliveries; none lost; duplicates only with the same
`webhook-id`; every delivery verified. A benchmark, not a test: nothing in `make test` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.common import TEMPORAL_ADDRESS, Sink, Stack, cpu_seconds, enroll_up, fresh_postgres, percentile, target
from workflows.names import webhook_endpoint_workflow_id

ENDPOINTS = 3
CONCURRENCY = 4
"""Creates in flight at once. On 2 cores the stack takes about 6 creates (12 changes) a second either way: 4 at a
time keep it that busy, while 20 at a time only queue the same work behind one another (the worker at one core),
which the latency of every change then carries. Run `--concurrency 20` to see that overload
(docs/performance.md)."""
P50_TARGET = 1.0
P99_TARGET = 5.0
SLICES = 5
"""The run is cut into this many slices of its changes (in the order they happened), to show whether a backlog
grows."""


@dataclass(frozen=True)
class Receipt:
    event_id: str
    event_type: str
    webhook_id: str
    created_at: float
    """The event's `created_at` (epoch seconds)."""
    received_at: float
    """When the body was read and verified (epoch seconds)."""
    verified: bool

    @property
    def latency(self) -> float:
        return self.received_at - self.created_at


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 that verifies each delivery with `standardwebhooks`, answers 200 and notes
    when it came. One request per connection, as the worker makes them."""

    name: str
    secret: str = ""
    endpoint_id: str = ""
    receipts: list[Receipt] = field(default_factory=list)
    unreadable: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _webhook: Webhook | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.name}"

    def use(self, secret: str) -> None:
        self.secret = secret
        self._webhook = Webhook(secret)

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def seen(self) -> set[str]:
        return {r.event_id for r in self.receipts if r.verified}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status = 200
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, colon, value = line.partition(":")
                if colon:
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            verified = False
            if self._webhook is not None:
                try:
                    self._webhook.verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    status = 400
            at = time.time()
            try:
                event = json.loads(body)
                created = datetime.fromisoformat(event["created_at"]).timestamp()
                self.receipts.append(
                    Receipt(event["id"], event["type"], headers.get("webhook-id", ""), created, at, verified)
                )
            except (ValueError, KeyError, TypeError):
                self.unreadable += 1
                status = 400
            reply = b'{"ok": true}' if status == 200 else b'{"error": "not verified"}'
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(reply)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass
class Stages:
    """Where a delivery's time went, from the store's own records of it (`GET …/deliveries`): the change until the
    endpoint's run collected its event (the delivery's `created_at`), then until its first attempt started (the
    attempt's `at`: the workflow task, the activity's dispatch and its read of the store), then until the receiver
    had it verified (signing, the POST; the attempt's recording comes after)."""

    collect: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    retried: int = 0
    missing: Counter[str] = field(default_factory=Counter)
    """Of the expected deliveries the receiver never had, what the store says of them: its delivery's status, or
    `not collected` when the endpoint's run has not made one yet. Pending or not collected is late, not lost; a
    Succeeded one the receiver never had would be lost for good."""


@dataclass
class Result:
    label: str
    creates: int
    concurrency: int
    create_seconds: float = 0.0
    create_errors: list[str] = field(default_factory=list)
    events: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Event id → (type, created_at) of every change the run made (`GET /api/events` after the warm-up)."""
    receivers: list[Receiver] = field(default_factory=list)
    drain_seconds: float = 0.0
    """From the last change until every expected delivery was in (or the deadline)."""
    cpu: dict[str, float] = field(default_factory=dict)
    stages: Stages = field(default_factory=Stages)
    wall: float = 0.0
    history: Counter[str] = field(default_factory=Counter)


async def history_counts(endpoint_id: str) -> Counter[str]:
    """What one endpoint's runs put in Temporal's history (every run of `webhook-endpoint-<id>`, the warm-up's
    included): events, workflow tasks, and activities by type."""
    client = await Client.connect(TEMPORAL_ADDRESS)
    counts: Counter[str] = Counter()
    workflow_id = webhook_endpoint_workflow_id(endpoint_id)
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        counts["runs"] += 1
        for event in history.events:
            counts["events"] += 1
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                counts["workflow tasks"] += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                counts[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return counts


def machine_cpu_seconds() -> float:
    """CPU time every process of the machine has used (user, nice, system, irq, softirq), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")


async def admin_token(stack: Stack) -> dict[str, str]:
    stack.enroll("users", "add", "bench-admin@example.com", "--role", "admin", "--password-stdin", stdin="y" * 16)
    token = stack.enroll("tokens", "create", "bench-admin@example.com").strip().splitlines()[-1]
    return {"Authorization": f"Bearer {token}"}


async def register(api: httpx.AsyncClient, admin: dict[str, str], receiver: Receiver) -> None:
    made = await api.post(
        "/api/webhook-endpoints",
        json={"url": receiver.url, "events": ["*"], "description": f"bench receiver {receiver.name}"},
        headers=admin,
    )
    if made.status_code != 201:
        raise SystemExit(f"POST /api/webhook-endpoints answered {made.status_code}: {made.text[:300]}")
    receiver.use(made.json()["secret"])
    receiver.endpoint_id = made.json()["id"]


async def stages(api: httpx.AsyncClient, admin: dict[str, str], receivers: list[Receiver], events: set[str]) -> Stages:
    found = Stages()
    for receiver in receivers:
        firsts = {r.event_id: r for r in receiver.receipts if r.verified}
        recorded: dict[str, str] = {}
        before: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"before": before} if before is not None else {})}
            page = await api.get(
                f"/api/webhook-endpoints/{receiver.endpoint_id}/deliveries", params=params, headers=admin
            )
            if page.status_code != 200:
                raise SystemExit(f"GET …/deliveries answered {page.status_code}: {page.text[:300]}")
            body = page.json()
            for delivery in body["items"]:
                recorded[delivery["event_id"]] = delivery["status"]
                receipt = firsts.get(delivery["event_id"])
                if receipt is None or delivery["event_id"] not in events or not delivery["attempt_log"]:
                    continue
                collected = datetime.fromisoformat(delivery["created_at"]).timestamp()
                attempted = datetime.fromisoformat(delivery["attempt_log"][0]["at"]).timestamp()
                found.collect.append(collected - receipt.created_at)
                found.dispatch.append(attempted - collected)
                found.post.append(receipt.received_at - attempted)
                found.retried += len(delivery["attempt_log"]) > 1
            before = body["next_before"]
            if before is None:
                break
        for event_id in events - set(firsts):
            found.missing[recorded.get(event_id, "not collected")] += 1
    return found


async def events_after(
    api: httpx.AsyncClient, admin: dict[str, str], cursor: str | None
) -> tuple[list[dict[str, Any]], str]:
    """Every event after `cursor` (from the oldest without one), and the cursor past them."""
    found: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor is not None:
            params["after"] = cursor
        page = await api.get("/api/events", params=params, headers=admin)
        if page.status_code != 200:
            raise SystemExit(f"GET /api/events answered {page.status_code}: {page.text[:300]}")
        body = page.json()
        found.extend(body["items"])
        if not body["items"] or body["next_cursor"] == cursor:
            return found, body["next_cursor"]
        cursor = body["next_cursor"]


async def create_enrollments(
    api: httpx.AsyncClient, sink: Sink, n: int, concurrency: int, errors: list[str], *, tag: str
) -> None:
    run = secrets.token_hex(3)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            contact = f"contact{i}@bench-{tag}-{run}.example"
            body = {
                "organization_name": f"Bench {run} Organization {i} Ltd",
                "member_type": "customer",
                "service_end_date": "2030-12-31",
                "display_users_purchased": True,
                "users_purchased": 100,
                "corporate_contact_email": contact,
            }
            try:
                response = await api.post("/api/enrollments", json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
                await sink.arrival(contact, timeout=120)
            except Exception as err:  # noqa: BLE001 — a benchmark counts failures and goes on
                errors.append(f"{type(err).__name__}: {err}")

    await asyncio.gather(*(one(i) for i in range(n)))


async def wait_for(receivers: list[Receiver], expected: set[str], deadline: float) -> bool:
    """Until every receiver has a verified delivery of every expected event, or the monotonic `deadline`."""
    while time.monotonic() < deadline:
        if all(expected <= r.seen() for r in receivers):
            return True
        await asyncio.sleep(0.1)
    return all(expected <= r.seen() for r in receivers)


async def settled_events(
    api: httpx.AsyncClient, admin: dict[str, str], cursor: str, want: int, *, quiet: float = 3.0, limit: float = 60.0
) -> list[dict[str, Any]]:
    """The events after `cursor`, once there are `want` of them, or once none has come for `quiet` seconds."""
    found: list[dict[str, Any]] = []
    last_change = time.monotonic()
    give_up = time.monotonic() + limit
    while True:
        more, cursor = await events_after(api, admin, cursor)
        if more:
            found.extend(more)
            last_change = time.monotonic()
        now = time.monotonic()
        if len(found) >= want or now - last_change >= quiet or now >= give_up:
            return found
        await asyncio.sleep(0.5)


async def measure(
    n: int, concurrency: int, deadline: float, database_url: str | None, label: str, *, progress: bool
) -> Result:
    result = Result(label, n, concurrency)
    receivers = [await Receiver(name).start() for name in ("a", "b", "c")[:ENDPOINTS]]
    result.receivers = receivers
    env = {"ENROLL_WEBHOOKS_ALLOW_PRIVATE": "true"}
    try:
        with Sink() as sink, enroll_up(sink.port, database_url=database_url, env=env) as stack:
            admin = await admin_token(stack)
            async with httpx.AsyncClient(base_url=stack.api, headers=stack.auth, timeout=60) as api:
                for receiver in receivers:
                    await register(api, admin, receiver)
                # Warm-up: a few creates delivered everywhere, so imports, connections and the endpoints' runs are
                # up before the measured changes; their events are left out of the figures.
                warm_errors: list[str] = []
                await create_enrollments(api, sink, min(n, 10), concurrency, warm_errors, tag="warm")
                await asyncio.sleep(1.0)  # the last invitations' `invited` records
                warm, cursor = await events_after(api, admin, None)
                if not await wait_for(receivers, {e["id"] for e in warm}, time.monotonic() + 120):
                    print(f"  warm-up: not every delivery arrived within 120 s ({warm_errors[:3]})")
                for receiver in receivers:
                    receiver.receipts.clear()

                roles = stack.roles()
                cpu = {role: cpu_seconds(pid) for role, pid in roles.items()}
                machine = machine_cpu_seconds()
                reporter = asyncio.create_task(report(receivers, time.monotonic())) if progress else None
                began = time.monotonic()
                await create_enrollments(api, sink, n, concurrency, result.create_errors, tag="run")
                result.create_seconds = time.monotonic() - began
                found = await settled_events(api, admin, cursor, want=2 * n)
                result.events = {
                    e["id"]: (e["type"], datetime.fromisoformat(e["created_at"]).timestamp()) for e in found
                }
                last_change = max((at for _, at in result.events.values()), default=time.time())
                # The deadline runs from the last change (wall clock), on the monotonic clock.
                until = time.monotonic() + max(0.0, last_change + deadline - time.time())
                await wait_for(receivers, set(result.events), until)
                received = [r.received_at for rec in receivers for r in rec.receipts if r.event_id in result.events]
                result.drain_seconds = (max(received) if received else time.time()) - last_change
                await asyncio.sleep(1.0)  # a late duplicate, if any, is counted too
                if reporter is not None:
                    reporter.cancel()
                result.cpu = {role: cpu_seconds(pid) - cpu[role] for role, pid in roles.items()}
                result.cpu["anything else"] = machine_cpu_seconds() - machine - sum(result.cpu.values())
                result.wall = time.monotonic() - began
                result.stages = await stages(api, admin, receivers, set(result.events))
                result.history = await history_counts(receivers[0].endpoint_id)
    finally:
        for receiver in receivers:
            await receiver.stop()
    return result


async def report(receivers: list[Receiver], began: float) -> None:
    """A progress line every 10 s: deliveries in, and the median latency of the last 10 s."""
    while True:
        await asyncio.sleep(10)
        now = time.time()
        got = [r for rec in receivers for r in rec.receipts]
        recent = [r.latency for r in got if r.received_at >= now - 10]
        median = f"{statistics.median(recent):5.2f} s" if recent else "    –"
        print(f"    {time.monotonic() - began:6.0f} s  {len(got):6d} deliveries in   p50 of the last 10 s {median}")


def summarise(result: Result, deadline: float) -> bool:
    label = result.label
    events = result.events
    types = Counter(kind for kind, _ in events.values())
    kinds = " + ".join(f"{count} {kind}" for kind, count in sorted(types.items()))
    print(
        f"\nWebhooks on {label}: {result.creates} creates, {result.concurrency} at a time → {len(events)} state "
        f"changes ({kinds}), {len(result.receivers)} endpoints on local receivers, every event"
    )
    rate = result.creates / result.create_seconds if result.create_seconds else 0.0
    print(
        f"  creates: {result.create_seconds:.1f} s ({rate:.1f} /s, {len(events) / max(result.create_seconds, 1e-9):.1f}"
        f" changes/s), errors {len(result.create_errors)}"
    )
    for error in result.create_errors[:3]:
        print(f"      {error}")

    latencies: list[float] = []
    lost = 0
    duplicates = 0
    mismatched = 0
    unverified = 0
    unexpected = 0
    first: dict[str, Receipt] = {}
    for receiver in result.receivers:
        firsts: dict[str, Receipt] = {}
        for receipt in receiver.receipts:
            if not receipt.verified:
                unverified += 1
                continue
            if receipt.event_id not in events:
                unexpected += 1
                continue
            if receipt.event_id in firsts:
                duplicates += 1
                mismatched += receipt.webhook_id != firsts[receipt.event_id].webhook_id
                continue
            firsts[receipt.event_id] = receipt
        missing = len(set(events) - set(firsts))
        lost += missing
        mine = [r.latency for r in firsts.values()]
        latencies.extend(mine)
        if mine:
            print(
                f"  endpoint {receiver.name}: {len(firsts)} of {len(events)} delivered   p50 "
                f"{statistics.median(mine) * 1000:6.0f} ms   p99 {percentile(mine, 99) * 1000:6.0f} ms   max "
                f"{max(mine) * 1000:6.0f} ms"
            )
        first.update({f"{receiver.name}/{k}": v for k, v in firsts.items()})
    unreadable = sum(r.unreadable for r in result.receivers)
    if events:
        order = sorted(events, key=lambda e: events[e][1])
        size = -(-len(order) // SLICES)
        shares = []
        for start in range(0, len(order), size):
            part = set(order[start : start + size])
            values = [r.latency for key, r in first.items() if key.split("/", 1)[1] in part]
            if values:
                shares.append(f"{statistics.median(values):.2f}/{percentile(values, 99):.2f}")
        print(f"  p50/p99 s by fifth of the changes, in order: {'  '.join(shares)}")
    print(f"  from the last change until the last delivery: {result.drain_seconds:.1f} s")
    parts = []
    for name, values in (
        ("change → collected", result.stages.collect),
        ("→ attempt started", result.stages.dispatch),
        ("→ received, verified", result.stages.post),
    ):
        if values:
            parts.append(f"{name} {statistics.median(values) * 1000:.0f}/{percentile(values, 99) * 1000:.0f}")
    if parts:
        print(f"  stages, p50/p99 ms: {'; '.join(parts)} (first attempts; {result.stages.retried} retried)")
    used = ", ".join(f"{role} {seconds:.0f} s" for role, seconds in result.cpu.items())
    deliveries = max(len(latencies), 1)
    worker = result.cpu.get("worker", 0.0)
    print(f"  CPU during the run ({result.wall:.0f} s × {os.cpu_count()} CPUs): {used}")
    if result.history:
        runs = result.history
        print(
            f"  endpoint a's history ({runs['runs']} runs, warm-up included): {runs['events']} events, "
            f"{runs['workflow tasks']} workflow tasks, {runs['deliver_new_events']} deliver_new_events and "
            f"{runs['attempt_delivery']} attempt_delivery (retries) activities"
        )
    if label == "PostgreSQL":
        print("  (on PostgreSQL, `anything else` includes the database server's processes)")
    print(f"  worker CPU per delivery, the creates' share included: {worker * 1000 / deliveries:.1f} ms")

    p50 = statistics.median(latencies) if latencies else float("inf")
    p99 = percentile(latencies, 99) if latencies else float("inf")
    ok = target(f"p50 change → verified delivery ≤ {P50_TARGET:g} s ({label})", f"{p50:.2f} s", p50 <= P50_TARGET)
    ok &= target(f"p99 change → verified delivery ≤ {P99_TARGET:g} s ({label})", f"{p99:.2f} s", p99 <= P99_TARGET)
    expected = len(events) * len(result.receivers)
    ok &= target(
        f"no delivery lost within {deadline:g} s of the last change ({label})",
        f"{lost} of {expected}",
        lost == 0 and len(events) > 0,
    )
    if result.stages.missing:
        said = ", ".join(f"{count} {status}" for status, count in sorted(result.stages.missing.items()))
        print(f"      not received, as the store has them then: {said}")
    same = "same webhook-id" if mismatched == 0 else f"{mismatched} with another webhook-id"
    ok &= target(f"duplicates only with the same webhook-id ({label})", f"{duplicates} ({same})", mismatched == 0)
    bad = unverified + unreadable
    ok &= target(f"every delivery verified with standardwebhooks ({label})", f"{bad} not", bad == 0)
    ok &= target(f"no errors creating ({label})", f"{len(result.create_errors)}", not result.create_errors)
    if unexpected:
        print(f"  (also {unexpected} deliveries of events from before the run: the warm-up's)")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=500, help="enrollments created; two changes each (default 500)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help=f"creates in flight at once (default {CONCURRENCY}: as many changes a second as 20 would, on 2 cores)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=60.0,
        help="seconds after the last change within which every delivery must arrive (default 60)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run on PostgreSQL: a fresh database is created on this server and dropped afterwards "
        "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--postgres-only", action="store_true", help="skip the SQLite run")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    print(f"Webhooks benchmark on {os.cpu_count()} CPUs, Python {platform.python_version()}")
    ok = True
    if not args.postgres_only:
        result = await measure(args.n, args.concurrency, args.deadline, None, "SQLite", progress=not args.quiet)
        ok &= summarise(result, args.deadline)
    if args.postgres:
        async with fresh_postgres(args.postgres) as url:
            result = await measure(args.n, args.concurrency, args.deadline, url, "PostgreSQL", progress=not args.quiet)
        ok &= summarise(result, args.deadline)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
