"""Prometheus metrics of both processes.

The worker: the Temporal SDK's own series and the business series the workflows and activities record through
the SDK's meter (`names.WORKER_SERIES`), served by the SDK at `ENROLL_METRICS_PORT` (`worker_runtime`).
The API: `/metrics` with prometheus_client: requests by route and status, their latency, and figures read from
the store at each scrape (the outbox, the relay, enrollments per status) — `ApiMetrics`.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from domain.settings import Settings
from observability import names
from observability.logs import bind_request_path

log = logging.getLogger(__name__)
disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin of every API series: nothing reads it
UNMATCHED = "unmatched"  # a path no route serves: one label for all, whatever scanners try
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The `method` label's values; any other method a client invents is counted as OTHER."""


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the worker's metrics on `ENROLL_METRICS_PORT` (None while it is unset).
    Durations are in seconds, as Prometheus expects; SDK counters keep the SDK's names (no `_total`), the ones
    Temporal's published dashboards query."""
    if settings.metrics_port is None:
        return None
    host = "127.0.0.1" if settings.embedded else "0.0.0.0"  # noqa: S104 - a pod or container's scrape port
    prometheus = PrometheusConfig(
        bind_address=f"{host}:{settings.metrics_port}",
        durations_as_seconds=True,
        histogram_bucket_overrides={names.FORM_COMPLETION: names.FORM_COMPLETION_BUCKETS},
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def zero_worker_counters(
    runtime: Runtime, *, namespace: str, task_queue: str, workflow_type: str, link_activity: str, mail_activity: str
) -> None:
    """Start the business counters at 0, with the labels their first real count will have: a series that only
    appears with its first event is missed by `rate()` and `increase()`, and so by the alert rules."""
    from domain.models import LINK_EMAILS, EmailKind, MemberType

    meter = runtime.metric_meter.with_additional_attributes({"namespace": namespace, "task_queue": task_queue})
    workflow = meter.with_additional_attributes({"workflow_type": workflow_type})

    def zero(on: MetricMeter, name: str, **labels: str) -> None:
        on.create_counter(name, names.DESCRIPTIONS[name]).add(0, labels)

    for member_type in MemberType:
        zero(workflow, names.ENROLLMENTS_CREATED, member_type=member_type.value)
        zero(workflow, names.ENROLLMENTS_APPROVED, member_type=member_type.value)
    zero(workflow, names.ENROLLMENTS_EXPIRED)
    zero(workflow, names.REMINDERS)
    for kind in LINK_EMAILS:
        zero(workflow, names.EMAILS_BOUNCED, kind=kind.value)
    for kind in EmailKind:  # the invitation goes by its own activity; reminders and the rest by the mail one
        sender = meter.with_additional_attributes(
            {"activity_type": link_activity if kind == EmailKind.invitation else mail_activity}
        )
        zero(sender, names.EMAILS_SENT, kind=kind.value)
        for error in ("SmtpDeferred", "SmtpUnreachable"):
            zero(sender, names.EMAIL_FAILURES, kind=kind.value, error=error)


class ApiMetrics:
    """The API's registry (one per app, so apps made in one process never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            names.HTTP_REQUESTS, "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            names.HTTP_DURATION, "Time to answer an HTTP request", ["method", "route"], registry=self.registry
        )
        self.outbox_oldest = Gauge(
            names.OUTBOX_OLDEST_UNSENT,
            "Age of the oldest email not yet accepted by the relay (0 when none waits)",
            registry=self.registry,
        )
        self.outbox_unsent = Gauge(names.OUTBOX_UNSENT, "Emails not yet accepted by the relay", registry=self.registry)
        self.mail_failing = Gauge(
            names.MAIL_FAILING, "1 while the relay is not accepting mail, else 0", registry=self.registry
        )
        self.enrollments = Gauge(names.ENROLLMENTS, "Enrollments per status now", ["status"], registry=self.registry)

    async def exposition(self, url: str) -> bytes:
        """The text a scrape gets: the store's figures read now, then everything in the registry. A store that
        cannot be read leaves its figures out rather than failing the scrape."""
        from store import enrollments, outbox

        try:
            count, oldest = await outbox.unsent(url)
            trouble = await outbox.mail_trouble(url)
            statuses = await enrollments.count_by_status(url)
        except Exception:
            log.warning("metrics: the store could not be read", exc_info=True)
            self._store_figures_unknown()
        else:
            self.outbox_unsent.set(count)
            age = (datetime.now(UTC) - _aware(oldest)).total_seconds() if oldest is not None else 0.0
            self.outbox_oldest.set(max(age, 0.0))
            self.mail_failing.set(1 if trouble else 0)
            self.enrollments.clear()
            for status, number in statuses.items():
                self.enrollments.labels(status=status).set(number)
        return generate_latest(self.registry)

    def _store_figures_unknown(self) -> None:
        self.enrollments.clear()
        for gauge in (self.outbox_unsent, self.outbox_oldest, self.mail_failing):
            gauge.set(float("nan"))


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template (never the raw path: it can hold a form
    token or an id) and status; and binds the request's enrollment or account id to its log lines."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bind_request_path(scope["path"])
        root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # A route's template; for a mounted app (the static files), which sets no route, the mount's path.
            mount = scope.get("root_path", "")[len(root_path) :]
            route = getattr(scope.get("route"), "path", None) or mount or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.duration.labels(method=method, route=route).observe(time.perf_counter() - started)
