"""OpenTelemetry traces: from the API request through the update-with-start, the workflow and each activity to
the SMTP send. Off unless `ENROLL_OTLP_ENDPOINT` is set (then spans go there over OTLP/HTTP) or a test hands in
its own provider with `use()`.

The pieces: `temporalio.contrib.opentelemetry.TracingInterceptor` on the Temporal client (the worker takes it
from its client), carrying the context through Temporal headers; FastAPI's and SQLAlchemy's instrumentation;
and a span of our own around each SMTP conversation (`smtp_span`). Span attributes carry ids and kinds, never an
address or a name."""

from __future__ import annotations

import atexit
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from domain.settings import Settings
from observability.redaction import redact

INSTRUMENTATION = "member-account-enrollment"
EXCLUDED_URLS = "/healthz,/metrics,/static"  # probes and scrapes, every few seconds: noise in a trace store

_provider: TracerProvider | None = None


def configure(settings: Settings, service_name: str) -> None:
    """At a process's start: export its spans to `ENROLL_OTLP_ENDPOINT` (an OTLP/HTTP collector's base URL,
    e.g. `http://otel-collector:4318`), if set."""
    if not settings.otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    endpoint = f"{settings.otlp_endpoint.rstrip('/')}/v1/traces"
    export_to(provider, OTLPSpanExporter(endpoint=endpoint))
    trace.set_tracer_provider(provider)
    use(provider)
    atexit.register(provider.shutdown)


def export_to(provider: TracerProvider, exporter: SpanExporter, *, batch: bool = True) -> None:
    """Send `provider`'s spans to `exporter`, every one through `RedactingExporter` first."""
    redacting = RedactingExporter(exporter)
    provider.add_span_processor(BatchSpanProcessor(redacting) if batch else SimpleSpanProcessor(redacting))


class RedactingExporter(SpanExporter):
    """What leaves the process carries no form-link token, address or typed search text: the instrumentations
    put the raw URL in attributes (`http.target`, `url.full`, ...), and an exception's message and stack (the
    relay's reply quoting an address, say) land in span events and the status. All of it passes `redact`."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(item) for item in value)
    return value


def redact_span(span: ReadableSpan) -> ReadableSpan:
    attributes = {key: _clean(value) for key, value in (span.attributes or {}).items()}
    events = [
        Event(event.name, {key: _clean(value) for key, value in (event.attributes or {}).items()}, event.timestamp)
        for event in span.events
    ]
    status = Status(span.status.status_code, _clean(span.status.description) if span.status.description else None)
    return ReadableSpan(
        name=_clean(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def use(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop). Engines created from now on are instrumented."""
    global _provider
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    _provider = provider
    if provider is not None:
        # Its declared range stops below SQLAlchemy 2.1; what it hooks (engine events) is unchanged in 2.1, and
        # tests/integration/telemetry_test.py checks the SQL spans arrive.
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(INSTRUMENTATION)


def client_interceptors() -> list[Any]:
    """The Temporal client's interceptors: the tracing one while tracing is on."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer())]


def instrument_app(app: Any) -> None:
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=EXCLUDED_URLS)


@contextmanager
def smtp_span(kind: str, host: str, port: int) -> Iterator[trace.Span]:
    """The SMTP conversation. A failure sets the span's status to the error's type alone: aiosmtplib's messages
    quote the refused addresses."""
    attributes: dict[str, str | int] = {"email.kind": kind, "server.address": host, "server.port": port}
    with tracer().start_as_current_span(
        "smtp send",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__name__)
            raise


def current_trace_id() -> str | None:
    """The trace the code runs in, as the 32 hex digits trace stores show; None outside one."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
