"""`ENROLL_OTLP_ENDPOINT` as production sets it: `enroll worker` and `enroll api` run as processes and export
their spans over OTLP/HTTP to a collector (here a real HTTP server decoding the protobuf requests), and the
API's request and the worker's SMTP send arrive in one trace, from two services."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from starter.dev.mailsink import MailSink
from store import users
from store.migrate import upgrade_to_head
from tests.integration.conftest import VALID, eventually, stack_settings
from tests.integration.worker_restart_test import worker_env
from tests.support import free_port


class Collector:
    """An OTLP/HTTP trace receiver: (service name, span name, trace id) of every span posted to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            collector.spans.append((attributes["service.name"], span.name, span.trace_id.hex()))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def traces_of(self, service: str, span: str) -> set[str]:
        return {trace for svc, name, trace in list(self.spans) if svc == service and name == span}


def start(role: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "starter.cli", role]
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def collector() -> Iterator[Collector]:
    started = Collector()
    yield started
    started.server.shutdown()


async def test_the_processes_export_one_trace_to_the_collector(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str, collector: Collector
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    port = free_port()
    settings = stack_settings(tmp_path, url, temporal, mail_sink, task_queue, api_port=port)
    env = worker_env(settings) | {"ENROLL_OTLP_ENDPOINT": collector.url, "ENROLL_API_PORT": str(port)}
    await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
    auth = {"Authorization": f"Bearer {await users.create_token(url, 'csm@provider.example')}"}
    processes = [start(role, env, tmp_path) for role in ("worker", "api")]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:

            async def api_up() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(api_up, timeout=60)
            created = await api.post("/api/enrollments", json=VALID, headers=auth)
            assert created.status_code == 201, created.text

            def one_trace() -> bool:
                requests = collector.traces_of("enroll-api", "POST /api/enrollments")
                return bool(requests & collector.traces_of("enroll-worker", "smtp send"))

            await eventually(one_trace, timeout=30)  # the batch exporter sends every few seconds
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert set(collector.paths) == {"/v1/traces"}
    (trace,) = collector.traces_of("enroll-api", "POST /api/enrollments")
    in_trace = {(service, name) for service, name, trace_id in collector.spans if trace_id == trace}
    assert {
        ("enroll-api", "StartUpdateWithStartWorkflow:EnrollmentWorkflow"),
        ("enroll-worker", "RunWorkflow:EnrollmentWorkflow"),
        ("enroll-worker", "RunActivity:send_invitation"),
        ("enroll-worker", "smtp send"),
    } <= in_trace, sorted(in_trace)
