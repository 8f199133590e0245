"""Logging for the API: uvicorn's own setup, with every handler redacting (form-link tokens, addresses) and
formatting as `ENROLL_LOG_FORMAT` says; the app's loggers go to the same handler."""

from __future__ import annotations

import copy
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from domain.settings import Settings
from observability.logs import JsonFormatter, Redact


def log_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": Redact}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    if settings.log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": JsonFormatter}
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
