"""Loaded by `st run` (SCHEMATHESIS_HOOKS). CPython 3.11.7 has a bug ("AST constructor recursion depth
mismatch") that hypothesis hits when it parses a module's source to describe a filter lambda; the
description is only cosmetic, so use the function's name instead."""

from collections.abc import Callable
from typing import Any

from hypothesis.strategies._internal import lazy


def _describe(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", "<function>")


lazy.get_pretty_function_description = _describe  # type: ignore[attr-defined,assignment]
