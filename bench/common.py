"""What the benchmarks share: the stack `enroll up` runs, started for real in a temporary data directory, an
SMTP sink that notes when each message arrives, a fresh PostgreSQL database, and how figures are printed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from google.protobuf.message import Message
from sqlalchemy.engine import make_url

from workflows.names import SEARCH_ATTRIBUTES

TEMPORAL_ADDRESS = "127.0.0.1:7233"
ENROLL = str(Path(sys.executable).parent / "enroll")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _settle(future: asyncio.Future[float], at: float) -> None:
    if not future.done():
        future.set_result(at)


class Sink:
    """An SMTP server that accepts everything and notes, per recipient, when the message was accepted (the
    monotonic clock of this process, so it compares with the senders' start times)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self.keep_messages = False
        self.received: dict[str, list[bytes]] = {}
        self.messages = 0
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[float]]] = {}
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.perf_counter()
        with self._lock:
            self.messages += 1
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt.lower(), at)
                if self.keep_messages:
                    self.received.setdefault(rcpt.lower(), []).append(bytes(envelope.original_content or b""))
                waiter = self._waiters.pop(rcpt.lower(), None)
                if waiter is not None:
                    loop, future = waiter
                    loop.call_soon_threadsafe(_settle, future, at)
        return "250 OK"

    async def arrival(self, recipient: str, timeout: float) -> float:
        """When the first message to `recipient` was accepted (waits for it up to `timeout` seconds)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        with self._lock:
            if recipient in self.arrived:
                return self.arrived[recipient]
            self._waiters[recipient] = (loop, future)
        return await asyncio.wait_for(future, timeout)

    def __enter__(self) -> Sink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@dataclass
class Stack:
    """`enroll up` in a temporary data directory: the embedded Temporal dev server (file database), worker and
    API, mailing to the sink; a CSM and its API token."""

    data_dir: Path
    api: str
    token: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)
    temporal_pid: int | None = None
    """The Temporal server's pid when the benchmark started it itself (`temporal_in_memory`), not `enroll up`."""
    more_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def enroll(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [ENROLL, *args], input=stdin, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"enroll {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def pid_of(self, command: str) -> int:
        """The pid of the child of `enroll up` whose command line has `command` (`-m starter.cli` is the
        worker, `-m starter.dev.api` the API, `server start-dev` Temporal)."""
        children = subprocess.run(["pgrep", "-a", "-P", str(self.process.pid)], capture_output=True, text=True)
        for line in children.stdout.splitlines():
            pid, _, cmdline = line.partition(" ")
            if command in cmdline:
                return int(pid)
        raise RuntimeError(f"no child of enroll up runs {command}: {children.stdout!r}")

    def roles(self) -> dict[str, int]:
        return {
            "Temporal": self.temporal_pid or self.pid_of("server start-dev"),
            "worker": self.pid_of("-m starter.cli"),
            "API": self.pid_of("-m starter.dev.api"),
            "benchmark": os.getpid(),
        }

    def worker_pids(self) -> list[int]:
        """`enroll up`'s worker and any the benchmark added (`add_worker`)."""
        return [self.pid_of("-m starter.cli"), *(worker.pid for worker in self.more_workers)]

    def csm_tokens(self, n: int) -> list[str]:
        """API tokens of `n` CSMs, this stack's own first: one token is throttled at 600 requests a minute
        (README "For partners"), slower than a benchmark creates for long; each CSM creates its share."""
        tokens: list[str] = self.extra.setdefault("tokens", [self.token])
        for i in range(len(tokens), n):
            email = f"bench-csm{i}@example.com"
            self.enroll("users", "add", email, "--role", "csm", "--password-stdin", stdin="x" * 16)
            tokens.append(self.enroll("tokens", "create", email).strip().splitlines()[-1])
        return tokens[:n]

    def add_worker(self, timeout: float = 60) -> int:
        """Start one more `enroll worker` process (`python -m starter.cli worker`, as `enroll up` runs its own),
        with the environment of `enroll up`'s worker but its own metrics port; returns once it polls."""
        first = self.pid_of("-m starter.cli")
        raw = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        env["ENROLL_METRICS_PORT"] = str(free_port())
        log = self.data_dir / f"worker-{len(self.more_workers) + 2}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "starter.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.more_workers.append(process)
        deadline = time.monotonic() + timeout
        while "worker polling task queue" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the added worker did not start; its output:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return process.pid


@contextlib.contextmanager
def temporal_in_memory() -> Iterator[subprocess.Popen[bytes]]:
    """A Temporal dev server with no database file (`temporal server start-dev` without `--db-filename`: it keeps
    everything in memory), on 127.0.0.1:7233 and the UI on :8233, with our search attributes; for
    `enroll_up(..., temporal=...)`. In memory it stands in for a production cluster, whose own database is not
    the dev server's single SQLite file."""
    if listening(7233) or listening(8233):
        raise SystemExit("127.0.0.1:7233 or :8233 is in use: stop `make up` (or another benchmark) first.")
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    argv = [temporal, "server", "start-dev", "--ip", "127.0.0.1", "--port", "7233", "--ui-port", "8233"]
    argv += ["--log-level", "warn"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        describe = [temporal, "operator", "namespace", "describe", "--address", TEMPORAL_ADDRESS, "-n", "default"]
        while subprocess.run(describe, capture_output=True, check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the in-memory Temporal dev server did not come up")
            time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def enroll_up(
    smtp_port: int,
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    temporal: subprocess.Popen[bytes] | None = None,
) -> Iterator[Stack]:
    """`enroll up` in a temporary data directory; with `temporal` (from `temporal_in_memory`) it uses that server
    (ENROLL_TEMPORAL_ADDRESS) instead of starting its own with a database file."""
    if temporal is None and (listening(7233) or listening(8233)):
        raise SystemExit("127.0.0.1:7233 or :8233 is in use: stop `make up` (or another benchmark) first.")
    data_dir = Path(tempfile.mkdtemp(prefix="enroll-bench-"))
    api_port = free_port()
    child_env = {
        **os.environ,
        "ENROLL_DATA_DIR": str(data_dir),
        "ENROLL_SMTP_HOST": "127.0.0.1",
        "ENROLL_SMTP_PORT": str(smtp_port),
        "ENROLL_API_PORT": str(api_port),
        **(env or {}),
    }
    if database_url:
        child_env["ENROLL_DATABASE_URL"] = database_url
    if temporal is not None:
        child_env["ENROLL_TEMPORAL_ADDRESS"] = TEMPORAL_ADDRESS
    log = data_dir / "enroll-up.log"
    with log.open("wb") as out:
        process = subprocess.Popen([ENROLL, "up"], env=child_env, stdout=out, stderr=subprocess.STDOUT)
    stack = Stack(data_dir, f"http://127.0.0.1:{api_port}", "", child_env, process, log)
    stack.temporal_pid = temporal.pid if temporal is not None else None
    try:
        deadline = time.monotonic() + 120
        while not _healthy(stack.api):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"`enroll up` did not come up; its output:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        stack.enroll("users", "add", "bench-csm@example.com", "--role", "csm", "--password-stdin", stdin="x" * 16)
        stack.token = stack.enroll("tokens", "create", "bench-csm@example.com").strip().splitlines()[-1]
        yield stack
    finally:
        for worker in stack.more_workers:
            worker.terminate()
        for worker in stack.more_workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def fresh_postgres(url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of `url` (SQLAlchemy form), dropped afterwards."""
    parsed = make_url(url)
    name = f"enroll_bench_{secrets.token_hex(4)}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


def payload_bytes(message: Message) -> int:
    """Bytes of every Temporal payload inside a history event (or any proto message)."""
    if message.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
        return message.ByteSize()
    total = 0
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.is_repeated:
            items = value.values() if descriptor.message_type.GetOptions().map_entry else value
            total += sum(payload_bytes(item) for item in items if isinstance(item, Message))
        else:
            total += payload_bytes(value)
    return total


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verdict(ok: bool) -> str:
    return "✓" if ok else "✗"


def target(label: str, measured: str, ok: bool) -> bool:
    print(f"  {verdict(ok)} {label:<58} {measured}")
    return ok
