"""Logging for the API: form-link tokens never reach a log line (uvicorn logs every request path)."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

_TOKEN_PATH = re.compile(r"/enroll/(?!thanks\b)[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    return _TOKEN_PATH.sub("/enroll/<redacted>", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging setup, with every handler passing through RedactTokens."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactTokens}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config
