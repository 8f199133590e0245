"""`run_up` as a supervisor, in-process and fast: Temporal and SMTP are "external" here, and the worker and
API are a stand-in program put in place of `sys.executable`, so only the child handling is under test."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.settings import Settings
from starter.dev import stack as devstack

FAKE_ROLE = """\
import http.server, os, pathlib, signal, sys, time
# invoked as: <fake python> -m starter.cli worker, or <fake python> -m starter.dev.api
role = {"starter.dev.api": "api"}.get(sys.argv[-1], sys.argv[-1])
pathlib.Path(os.environ["FAKE_PIDS"], role).write_text(str(os.getpid()))
behaviour = os.environ.get("FAKE_" + role.upper(), "sleep")
if behaviour == "crash":
    time.sleep(0.3)
    sys.exit(3)
if behaviour == "stubborn":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    if behaviour == "serve":
        address = (os.environ["ENROLL_API_HOST"], int(os.environ["ENROLL_API_PORT"]))
        http.server.HTTPServer(address, http.server.BaseHTTPRequestHandler).serve_forever()
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    pass
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def fake_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the worker and API as FAKE_ROLE; yields the directory where each role writes its pid."""
    program = tmp_path / "fake-python"
    program.write_text(f"#!{sys.executable}\n{FAKE_ROLE}")
    program.chmod(0o755)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setattr(sys, "executable", str(program))
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    monkeypatch.setenv("ENROLL_API_HOST", "127.0.0.1")
    monkeypatch.setenv("ENROLL_API_PORT", str(_free_port()))
    yield pids
    for pid_file in pids.iterdir():  # never leave one behind, whatever the test did
        if _alive(pid := int(pid_file.read_text())):
            os.kill(pid, signal.SIGKILL)


def _settings(tmp_path: Path) -> Settings:
    # Nothing embedded: Temporal and SMTP are "elsewhere"; the store is a SQLite file in tmp_path.
    return Settings(
        data_dir=tmp_path / "data", database_url=None, temporal_address="127.0.0.1:1", smtp_host="127.0.0.1"
    )


def _interrupt_once_listening(port: int) -> threading.Thread:
    """Ctrl-C this process once the (fake) API listens; never if it does not, so pytest is not hit."""

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if devstack._listening("127.0.0.1", port):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_stops_every_role_and_returns_0(
    tmp_path: Path, fake_roles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API", "serve")
    settings = _settings(tmp_path)
    handler_before = signal.getsignal(signal.SIGINT)
    interrupter = _interrupt_once_listening(settings.api_port)

    assert devstack.run_up(settings) == 0

    interrupter.join()
    pids = {role.name: int(role.read_text()) for role in fake_roles.iterdir()}
    assert set(pids) == {"worker", "api"}
    assert not [role for role, pid in pids.items() if _alive(pid)]
    assert not devstack._listening("127.0.0.1", settings.api_port)
    assert (tmp_path / "data" / "enroll.db").exists(), "migrations ran before the roles started"
    assert signal.getsignal(signal.SIGINT) is handler_before, "the handler is put back"


def test_a_role_that_dies_stops_the_others_and_returns_1(
    tmp_path: Path, fake_roles: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_API", "crash")

    assert devstack.run_up(_settings(tmp_path)) == 1

    assert "API exited unexpectedly with code 3" in capsys.readouterr().out
    assert not _alive(int((fake_roles / "worker").read_text()))


def test_a_role_that_ignores_sigint_is_killed(
    tmp_path: Path, fake_roles: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_API", "serve")
    monkeypatch.setenv("FAKE_WORKER", "stubborn")
    monkeypatch.setattr(devstack, "STOP_TIMEOUT", 1.0)
    settings = _settings(tmp_path)
    interrupter = _interrupt_once_listening(settings.api_port)

    assert devstack.run_up(settings) == 0

    interrupter.join()
    assert "worker did not stop within 1 s; killing it" in capsys.readouterr().out
    assert not _alive(int((fake_roles / "worker").read_text()))


def test_a_busy_port_is_refused_before_anything_starts(
    tmp_path: Path, fake_roles: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.api_port))
        squatter.listen()
        assert devstack.run_up(settings) == 1
    assert f"127.0.0.1:{settings.api_port}, wanted for the API, is already in use" in capsys.readouterr().out
    assert list(fake_roles.iterdir()) == []
