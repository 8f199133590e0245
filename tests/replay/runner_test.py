"""The production worker runs workflows without the SDK's sandbox (worker.SANDBOXED, docs/performance.md); the
test suite runs them in it. Without the sandbox, runs share their modules' globals: these tests keep the workflow
modules free of state that one run could change under another."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

import worker
import workflows

READ_ONLY_TABLES = {
    "workflows.administrator.SETTLED",
    "workflows.administrator.REFUSALS",
    "workflows.mailer.SENDERS",
    "workflows.names._CLI_TYPES",
    "workflows.names.SEARCH_ATTRIBUTES",
}
"""Module-level dicts that are lookup tables, read and never written (checked below: no code assigns into them)."""


def workflow_modules() -> list[ModuleType]:
    return [importlib.import_module(f"workflows.{m.name}") for m in pkgutil.iter_modules(workflows.__path__)]


def test_the_test_suite_runs_workflows_in_the_sandbox_and_production_does_not() -> None:
    assert worker.SANDBOXED, "tests/conftest.py sets worker.SANDBOXED: every workflow test runs in the sandbox"
    assert isinstance(worker.workflow_runner(), SandboxedWorkflowRunner)
    worker.SANDBOXED = False
    try:
        assert isinstance(worker.workflow_runner(), UnsandboxedWorkflowRunner)
    finally:
        worker.SANDBOXED = True


def test_workflow_modules_keep_no_mutable_state_but_read_only_tables() -> None:
    found: set[str] = set()
    for module in workflow_modules():
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(value, (list, dict, set, bytearray)):
                found.add(f"{module.__name__}.{name}")
            if inspect.isclass(value) and value.__module__ == module.__name__:
                for attribute, held in vars(value).items():
                    if isinstance(held, (list, dict, set, bytearray)) and not attribute.startswith("__"):
                        found.add(f"{module.__name__}.{name}.{attribute}")
        source = inspect.getsource(module)
        assert "global " not in source, f"{module.__name__} rebinds a module global"
        for table in READ_ONLY_TABLES:
            owner, _, short = table.rpartition(".")
            if owner == module.__name__:
                writes = re.compile(rf"\b{short}(\[[^\]]*\]\s*=[^=]|\.(update|pop|popitem|setdefault|clear)\()")
                assert not writes.search(source), f"{table} is written to: it must stay a read-only table"
    assert found == READ_ONLY_TABLES, (
        "a workflow module holds a mutable global or class attribute: runs share it without the sandbox "
        f"(keep state on the instance): {sorted(found - READ_ONLY_TABLES)}"
    )
