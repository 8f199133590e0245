"""`enroll up` for real: the embedded Temporal dev server, mail sink, worker and API on their fixed ports,
started twice on one data dir (the second start finds the databases of the first) and stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from observability import names
from starter.dev.mailsink import list_messages
from tests.support import samples
from workflows.names import SEARCH_ATTRIBUTES

REPO = Path(__file__).resolve().parents[2]
PORTS = {7233: "Temporal", 8233: "Temporal UI", 8000: "API", 1025: "mail sink", 9464: "worker metrics"}
RUN_UP = (
    "from starter.dev.stack import run_up; from domain.settings import Settings; raise SystemExit(run_up(Settings()))"
)
# Settings that would point the stack away from its embedded defaults.
NOT_EMBEDDED = ("TEMPORAL_ADDRESS", "SMTP_HOST", "SMTP_PORT", "API_HOST", "API_PORT", "DATABASE_URL")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def free_ports() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to find the stack's children")
    busy = [f"{port} ({role})" for port, role in PORTS.items() if _listening(port)]
    if busy:
        pytest.skip(f"ports {', '.join(busy)} are in use (is `make up` running?); this test needs them free")


@contextmanager
def _stack(cwd: Path, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`run_up` in a subprocess until the API is healthy; on leaving, Ctrl-C it and check nothing remains."""
    env = {name: value for name, value in os.environ.items() if name.removeprefix("ENROLL_") not in NOT_EMBEDDED}
    env.update(ENROLL_DATA_DIR=str(data_dir), PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    log_path = data_dir.parent / f"up-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        # cwd is outside the repository so a developer's .env cannot change what is tested.
        up = subprocess.Popen([sys.executable, "-c", RUN_UP], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        _wait_healthy(up, log_path)
        children = _children(up.pid)
        yield up
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0, log_path.read_text()
        assert [port for port in PORTS if _listening(port)] == []
        assert [pid for pid in children if _alive(pid)] == []
    finally:  # after a failure: stop whatever is still running
        if up.poll() is None:
            children += _children(up.pid)
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        for pid in children:
            if _alive(pid):
                with suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def _wait_healthy(up: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if up.poll() is not None:
            pytest.fail(f"run_up exited with {up.returncode} before the API was healthy:\n{log_path.read_text()}")
        try:
            if httpx.get("http://127.0.0.1:8000/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"http://127.0.0.1:8000/healthz did not answer 200 within 120 s:\n{log_path.read_text()}")


def _custom_search_attributes() -> set[str]:
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    listed = subprocess.run(
        [temporal, "operator", "search-attribute", "list", "--address", "127.0.0.1:7233", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(json.loads(listed.stdout)["customAttributes"])


def _send(subject: str) -> None:
    message = EmailMessage()
    message["From"] = "enrollment@localhost"
    message["To"] = "contact@example.com"
    message["Subject"] = subject
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", 1025, timeout=10) as smtp:
        smtp.send_message(message)


def _enroll(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    """The `enroll` CLI as the README's first steps run it, beside the stack."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENROLL_")}
    env["ENROLL_DATA_DIR"] = str(data_dir)
    argv = [sys.executable, "-m", "starter.cli", *args]
    done = subprocess.run(argv, env=env, cwd=data_dir.parent, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _scrape(url: str) -> str:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, url
    return answer.text


def _create_one_enrollment(data_dir: Path) -> None:
    """The README's first steps: a user, a token, one create; then the invitation arrives."""
    _enroll(data_dir, "users", "add", "csm@example.com", "--role", "csm", "--password-stdin", stdin="a long passphrase")
    token = _enroll(data_dir, "tokens", "create", "csm@example.com").strip().splitlines()[-1]
    body = {
        "service_end_date": "2030-12-31",
        "member_type": "customer",
        "display_users_purchased": True,
        "users_purchased": 1000,
        "organization_name": "Acme Widgets Ltd",
        "corporate_contact_email": "pat@acme.example",
    }
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post("http://127.0.0.1:8000/api/enrollments", json=body, headers=headers, timeout=15)
    assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 30
    while "pat@acme.example" not in [to for m in list_messages(data_dir / "mailbox") for to in m.rcpt_tos]:
        assert time.monotonic() < deadline, "no invitation arrived"
        time.sleep(0.2)


def _series(exposition: str) -> set[str]:
    return {series.split("{")[0] for series in samples(exposition)}


@pytest.mark.usefixtures("free_ports")
def test_up_runs_every_role_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    mailbox = data_dir / "mailbox"

    with _stack(tmp_path, data_dir) as up:
        assert len(_children(up.pid)) == 4, "Temporal, mail sink, worker, API"
        assert httpx.get("http://127.0.0.1:8233/", timeout=10).status_code == 200
        assert _custom_search_attributes() >= set(SEARCH_ATTRIBUTES)
        _send("first run")
        assert [m.subject for m in list_messages(mailbox)] == ["first run"]

        # One create, then a real scrape of both metrics endpoints `enroll up` prints.
        _create_one_enrollment(data_dir)
        worker = _scrape("http://127.0.0.1:9464/metrics")
        api = _scrape("http://127.0.0.1:8000/metrics")
        assert {
            "temporal_workflow_task_schedule_to_start_latency_bucket",
            "temporal_activity_schedule_to_start_latency_bucket",
            "temporal_worker_task_slots_available",
            "temporal_worker_task_slots_used",
        } <= _series(worker)
        assert set(names.WORKER_SERIES) - {names.STATUS_TRANSITIONS, names.FORM_COMPLETION} <= _series(worker)
        assert re.search(r'enroll_enrollments_created_total\{[^}]*member_type="customer"[^}]*\} 1', worker)
        assert re.search(r'enroll_emails_sent_total\{[^}]*kind="invitation"[^}]*\} 1', worker)
        assert set(names.API_SERIES) - {names.HTTP_DURATION} <= _series(api)
        assert f"{names.HTTP_DURATION}_bucket" in _series(api)
        assert 'enroll_http_requests_total{method="POST",route="/api/enrollments",status="201"} 1.0' in api
        assert 'enroll_enrollments{status="New"} 1.0' in api

    assert (data_dir / "temporal.db").exists()
    assert (data_dir / "enroll.db").exists()

    with _stack(tmp_path, data_dir):  # again, on the databases of the first run
        assert _custom_search_attributes() >= set(SEARCH_ATTRIBUTES)
        _send("second run")
        subjects = [m.subject for m in list_messages(mailbox)]
        assert subjects[0] == "second run" and "first run" in subjects[1:]
