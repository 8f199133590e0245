"""Log lines an operator can join to an enrollment, and that carry no secret and no personal data.

Every handler gets `Redact`: form-link tokens (uvicorn logs every request path) and email addresses (a relay's
reply can quote one) never reach a line. With `ENROLL_LOG_FORMAT=json` each line is one JSON object with the ids
known where it was logged: `enrollment_id` or `account_id`, `workflow_id`, `run_id`, `activity` (from the
Temporal SDK's loggers, or from the API request's path) and the OpenTelemetry `trace_id`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

from domain.settings import Settings
from observability.redaction import redact
from observability.tracing import current_trace_id

_ID_PATH = re.compile(r"^/(?:api/)?(?P<kind>enrollments|accounts)/(?P<id>[A-Za-z0-9_-]+)")
_WORKFLOW_ID = re.compile(r"^(?P<kind>enrollment|account)-(?P<id>.+)$")
_request_ids: ContextVar[dict[str, str] | None] = ContextVar("log_request_ids", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redact(logging.Filter):
    """On every handler: the message, its arguments and any traceback (a relay's reply in an exception can quote
    an address) are redacted before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        record.msg = redact(str(record.msg))
        if record.exc_info:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None  # formatters print exc_text, already redacted
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


def bind_request_path(path: str) -> None:
    """The API's middleware, as a request starts: its path's enrollment or account id joins its log lines."""
    match = _ID_PATH.match(path)
    kind = {"enrollments": "enrollment_id", "accounts": "account_id"}
    _request_ids.set({kind[match["kind"]]: match["id"]} if match else None)


def _ids_of_workflow(workflow_id: str) -> dict[str, str]:
    match = _WORKFLOW_ID.match(workflow_id)
    return {f"{match['kind']}_id": match["id"]} if match else {}


def context_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids of where `record` was logged, as far as they are known."""
    ids: dict[str, str] = {}
    on_activity = getattr(record, "temporal_activity", None)
    on_workflow = getattr(record, "temporal_workflow", None)
    if on_activity is None and activity.in_activity():
        info = activity.info()
        on_activity = {"workflow_id": info.workflow_id, "workflow_run_id": info.workflow_run_id}
        on_activity["activity_type"] = info.activity_type
    if isinstance(on_activity, dict):
        workflow_id = str(on_activity.get("workflow_id") or "")
        ids |= _ids_of_workflow(workflow_id) | {"workflow_id": workflow_id}
        ids["run_id"] = str(on_activity.get("workflow_run_id") or "")
        ids["activity"] = str(on_activity.get("activity_type") or "")
    elif isinstance(on_workflow, dict):
        workflow_id = str(on_workflow.get("workflow_id") or "")
        ids |= _ids_of_workflow(workflow_id) | {"workflow_id": workflow_id}
        ids["run_id"] = str(on_workflow.get("run_id") or "")
    ids |= _request_ids.get() or {}
    trace_id = current_trace_id()
    if trace_id:
        ids["trace_id"] = trace_id
    return {key: value for key, value in ids.items() if value}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids of `context_ids`, and any error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line |= context_ids(record)
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["error"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, level: int = logging.INFO) -> None:
    """A process's logging: one handler on stderr, redacting, in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings))
    handler.addFilter(Redact())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request's URL at INFO: a webhook endpoint's URL may carry its receiver's token in its query.
    # Our own line per failed attempt names the delivery and endpoint ids instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.log_format == "json":
        # The ids are fields of their own; the SDK's loggers need not repeat them in the message.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
