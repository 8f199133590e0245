"""Operations' view on real parts: the worker's and the API's Prometheus metrics after a whole lifecycle, and one
trace from the API request to the SMTP send (an in-memory span exporter)."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from observability import names, tracing
from observability.metrics import worker_runtime
from starter.app import create_app
from starter.dev.mailsink import MailSink
from store import users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.deploy.observability_test import SERVER_METRICS, referenced_metrics
from tests.integration.conftest import Stack, eventually, stack_settings
from tests.integration.lifecycle_test import created, submitted
from tests.support import free_port, samples
from worker import build_worker


@contextlib.asynccontextmanager
async def own_stack(settings: Settings, temporal: WorkflowEnvironment, sink: MailSink, runtime: Runtime | None = None):
    """The stack as the processes run it: the API connects its own client, the worker runs on `runtime`."""
    upgrade_to_head(settings.effective_database_url)
    app = create_app(settings)
    try:
        async with (
            await build_worker(settings, runtime),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api,
        ):
            url = settings.effective_database_url
            await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
            yield Stack(settings, temporal, sink, api, await users.create_token(url, "csm@provider.example"))
    finally:
        await dispose_all()


def matching(found: dict[str, float], name: str, **labels: str) -> list[float]:
    """The values of the series of `name` whose labels include `labels`."""
    wanted = [f'{key}="{label}"' for key, label in labels.items()]
    return [
        v
        for series, v in found.items()
        if re.match(rf"{re.escape(name)}(\{{|$)", series) and all(w in series for w in wanted)
    ]


def value(found: dict[str, float], name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels`."""
    values = matching(found, name, **labels)
    assert values, f"no series {name} with {labels}"
    return sum(values)


async def test_a_lifecycle_shows_in_the_worker_and_api_metrics(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    port = free_port()
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    settings = stack_settings(tmp_path, url, temporal, mail_sink, task_queue, metrics_port=port, reminders="3s")
    runtime = worker_runtime(settings)
    assert runtime is not None
    async with own_stack(settings, temporal, mail_sink, runtime) as stack:
        enrollment_id = await created(stack)
        await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 2)  # the reminder, 3 s on
        await submitted(stack, enrollment_id)
        reviewer = await stack.token_for("reviewer@provider.example", Role.reviewer)
        for step in ("start", "approve"):
            answer = await stack.api.post(
                f"/api/enrollments/{enrollment_id}/review/{step}",
                json={"audit_note": step},
                headers={"Authorization": f"Bearer {reviewer}"},
            )
            assert answer.status_code == 200, answer.text
        async with httpx.AsyncClient() as scraper:

            async def worker_samples() -> dict[str, float]:
                return samples((await scraper.get(f"http://127.0.0.1:{port}/metrics")).text)

            async def approved() -> bool:
                return value(await worker_samples(), names.ENROLLMENTS_APPROVED, member_type="customer") >= 1

            await eventually(approved)

            async def approval_mailed() -> bool:
                sent = await worker_samples()
                return value(sent, names.EMAILS_SENT, kind="approved") == 1

            async def all_sent() -> bool:
                return "enroll_outbox_unsent 0.0" in (await stack.api.get("/metrics")).text

            await eventually(approval_mailed)

            # The approved account invites its administrators too (the corporate and technical contacts): once those
            # are out, nothing is left to send.
            def administrators_invited() -> bool:
                invited = {to for m in stack.mail() if "administer" in m.subject for to in m.rcpt_tos}
                return {"pat@acme.example", "sam@acme.example"} <= invited

            await eventually(administrators_invited)
            await eventually(all_sent)
            worker = await worker_samples()
        assert (await stack.api.get("/static/site.css")).status_code == 200
        api_answer = await stack.api.get("/metrics")

    # The SDK's own series, with the task queue as a label.
    for sdk in (
        "temporal_workflow_task_schedule_to_start_latency_count",
        "temporal_activity_schedule_to_start_latency_count",
        "temporal_worker_task_slots_available",
        "temporal_num_pollers",
    ):
        assert value(worker, sdk, task_queue=task_queue) > 0, sdk
    # The business series.
    # One series each: the zero the worker started it at is the series the real count went to.
    assert matching(worker, names.ENROLLMENTS_CREATED, member_type="customer") == [1]
    assert matching(worker, names.ENROLLMENTS_APPROVED, member_type="customer") == [1]
    assert matching(worker, names.EMAILS_SENT, kind="invitation") == [1]
    assert value(worker, names.STATUS_TRANSITIONS, from_status="New", to_status="Pending Review") == 1
    assert value(worker, names.STATUS_TRANSITIONS, from_status="In Review", to_status="Approved") == 1
    assert value(worker, names.ENROLLMENTS_APPROVED, member_type="customer") == 1
    assert value(worker, names.EMAILS_SENT, kind="invitation") == 1
    assert value(worker, f"{names.FORM_COMPLETION}_count", member_type="customer") == 1
    assert value(worker, f"{names.FORM_COMPLETION}_bucket", le="3600") == 1  # the buckets are of hours and days
    assert matching(worker, names.REMINDERS) == [1]
    assert matching(worker, names.EMAILS_SENT, kind="reminder") == [1]
    for zero in (names.ENROLLMENTS_EXPIRED, names.EMAILS_BOUNCED, names.EMAIL_FAILURES):
        assert value(worker, zero) == 0, zero  # present from the start, so rate() and alerts see them

    assert api_answer.status_code == 200
    assert api_answer.headers["content-type"].startswith("text/plain")
    api = samples(api_answer.text)
    assert value(api, "enroll_http_requests_total", method="POST", route="/api/enrollments", status="201") == 1
    # The route template, never the token.
    assert value(api, "enroll_http_requests_total", route="/enroll/{token:record}", status="303") == 1
    assert value(api, "enroll_http_request_duration_seconds_count", route="/api/enrollments") == 1
    assert value(api, "enroll_http_requests_total", route="/static", status="200") == 1  # the mount, not "unmatched"
    assert value(api, names.ENROLLMENTS, status="Approved") == 1
    assert value(api, names.OUTBOX_UNSENT) == 0
    assert value(api, names.OUTBOX_OLDEST_UNSENT) == 0
    assert value(api, names.MAIL_FAILING) == 0
    assert not re.search(r"/enroll/[A-Za-z0-9_-]{20,}", api_answer.text)

    # Every series the dashboard and the alert rules read is one these processes really serve (but the Temporal
    # server's own, and the SDK's failure counters, which appear with the first failure).
    served = {re.sub(r"_(bucket|sum|count)$", "", series.split("{")[0]) for series in {**worker, **api}}
    expected_later = {
        "temporal_workflow_task_execution_failed",
        "temporal_activity_execution_failed",
        "temporal_request_failure",
        "temporal_workflow_failed",
    }
    assert referenced_metrics() - SERVER_METRICS - expected_later <= served, sorted(
        referenced_metrics() - SERVER_METRICS - expected_later - served
    )


async def test_the_api_metrics_count_a_waiting_email_and_a_failing_relay(
    tmp_path: Path, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    # No relay listens: the invitation waits in the outbox, retrying, and the relay is reported failing.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    sink = MailSink(tmp_path / "mailbox", port=dead_port)
    settings = stack_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}", temporal, sink, task_queue)
    async with own_stack(settings, temporal, sink) as stack:
        assert (await stack.create()).status_code == 201

        async def failing() -> bool:
            api = samples((await stack.api.get("/metrics")).text)
            return value(api, names.MAIL_FAILING) == 1 and value(api, names.OUTBOX_UNSENT) == 1

        await eventually(failing, timeout=30)
        api = samples((await stack.api.get("/metrics")).text)
        assert value(api, names.OUTBOX_OLDEST_UNSENT) > 0


def in_trace(spans: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    return [span for span in spans if span.context is not None and span.context.trace_id == trace_id]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names of `span`'s parents, nearest first."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span.name)
    return chain


async def test_one_trace_from_the_api_request_to_the_smtp_send(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    tracing.export_to(provider, exporter, batch=False)  # as production exports, but at once
    tracing.use(provider)
    try:
        settings = stack_settings(
            tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}", temporal, mail_sink, task_queue
        )
        async with own_stack(settings, temporal, mail_sink) as stack:
            await created(stack)
            await eventually(lambda: any(s.name == "smtp send" for s in exporter.get_finished_spans()))
            link = stack.form_link("pat@acme.example")
            assert (await stack.api.get(link)).status_code == 200  # the contact opens the form
            searched = await stack.api.get("/api/enrollments?q=Acme%20Widgets&status=New", headers=stack.auth)
            assert searched.status_code == 200
    finally:
        tracing.use(None)
    spans = exporter.get_finished_spans()

    requests = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST /api/enrollments"]
    assert len(requests) == 1
    assert requests[0].context is not None
    trace = in_trace(spans, requests[0].context.trace_id)
    named = {span.name for span in trace}
    assert {
        "StartUpdateWithStartWorkflow:EnrollmentWorkflow",
        "RunWorkflow:EnrollmentWorkflow",
        "StartActivity:send_invitation",
        "RunActivity:send_invitation",
        "smtp send",
    } <= named, sorted(named)
    assert any(span.attributes and span.attributes.get("db.system") for span in trace), "no SQL span in the trace"
    (smtp,) = [span for span in trace if span.name == "smtp send"]
    assert ancestors(smtp, trace)[:1] == ["RunActivity:send_invitation"]
    assert ancestors(smtp, trace)[-1] == "POST /api/enrollments"
    # What left the process: ids and kinds, no form-link token, no address, no typed search.
    exported = "".join(span.to_json() for span in exporter.get_finished_spans())
    assert "/enroll/<redacted>" in exported and "q=<redacted>" in exported
    for private in (link.rsplit("/", 1)[1], "pat@acme.example", "csm@provider.example", "Acme"):
        assert private not in exported, private


def test_exported_spans_carry_no_token_address_or_typed_search() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    tracing.export_to(provider, exporter, batch=False)
    token = "kWNNd3tWVgFWkwa6JPIZ3ggS3FIYdqzdNFAjCpRBKdQ"
    tracer = provider.get_tracer("test")
    attributes = {"http.target": f"/enroll/{token}", "url.full": "http://x/api/enrollments?q=Acme%20Widgets&status=New"}
    with tracer.start_as_current_span("GET /enroll/{token}", attributes=attributes) as span:
        span.record_exception(RuntimeError("550 5.1.1 <pat@acme.example>: Recipient address rejected"))
        span.set_status(Status(StatusCode.ERROR, "refused pat@acme.example"))
    tracing.use(provider)
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused), tracing.smtp_span("invitation", "relay", 25):
            raise aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "unknown", "pat@acme.example")]
            )
    finally:
        tracing.use(None)
    first, smtp = exporter.get_finished_spans()
    exported = first.to_json() + smtp.to_json()
    for private in (token, "pat@acme.example", "Acme"):
        assert private not in exported, private
    assert "status=New" in exported  # what is not typed stays, for the operator
    assert smtp.status.status_code == StatusCode.ERROR and smtp.status.description == "SMTPRecipientsRefused"
    assert not smtp.events


@pytest.fixture(autouse=True)
def _tracing_off_after() -> None:
    assert not tracing.enabled()
