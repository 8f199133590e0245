"""The worked example of docs/operations.md, "Changing a workflow": the `lean-store-writes` change to
EnrollmentWorkflow, replayed against the recorded histories at each step of a patch's life.

Each step is the real workflow source with one line changed, loaded as a module of its own, so this shows the
replay tests failing on exactly the mistake they are there to catch: shipping the change without its guard.

1. Shipped unguarded: runs recorded before the change no longer replay (CI fails).
2. Guarded by `workflow.patched` (what main holds): every recorded history replays (replay_test.py).
3. Once no run from before the change can still be running: `workflow.deprecate_patch` and the old branch gone;
   runs recorded with the patch replay, and (only) the old ones would not — which is why step 3 waits.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

import workflows.enrollment
from workflows.account import MemberAccountWorkflow

HISTORIES = Path(__file__).parent / "histories"
BEFORE = sorted(HISTORIES.glob("enrollment-mail-*.json"))  # recorded before lean-store-writes
AFTER = sorted(HISTORIES.glob("enrollment-lean-*.json"))  # recorded with it
GUARDED = "self._lean_writes = self._best_effort_mail and workflow.patched(LEAN_STORE_WRITES)"
STEPS = {
    "unguarded": "self._lean_writes = self._best_effort_mail",
    "deprecated": "workflow.deprecate_patch(LEAN_STORE_WRITES)\n        self._lean_writes = self._best_effort_mail",
}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    source = Path(workflows.enrollment.__file__).read_text()
    assert source.count(GUARDED) == 1, "the example's line changed: update this test and docs/operations.md"
    directory = tmp_path_factory.mktemp("variants")
    sys.path.insert(0, str(directory))
    try:
        loaded = {}
        for step, line in STEPS.items():
            name = f"enrollment_{step}_example"
            (directory / f"{name}.py").write_text(source.replace(GUARDED, line))
            loaded[step] = importlib.import_module(name)
        yield loaded
    finally:
        sys.path.remove(str(directory))
        for step in STEPS:
            sys.modules.pop(f"enrollment_{step}_example", None)


async def replay(module: ModuleType, path: Path) -> Exception | None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(
        workflows=[module.EnrollmentWorkflow, MemberAccountWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


def test_there_are_histories_from_before_and_after_the_change() -> None:
    assert BEFORE and AFTER


@pytest.mark.parametrize("path", BEFORE, ids=[p.stem for p in BEFORE])
async def test_the_change_shipped_without_its_guard_fails_on_runs_from_before_it(
    variants: dict[str, ModuleType], path: Path
) -> None:
    failure = await replay(variants["unguarded"], path)
    assert isinstance(failure, NondeterminismError), failure


@pytest.mark.parametrize("path", AFTER, ids=[p.stem for p in AFTER])
async def test_once_deprecated_the_runs_recorded_with_the_patch_still_replay(
    variants: dict[str, ModuleType], path: Path
) -> None:
    assert await replay(variants["deprecated"], path) is None


@pytest.mark.parametrize("path", BEFORE, ids=[p.stem for p in BEFORE])
async def test_deprecating_too_early_would_break_the_runs_from_before(
    variants: dict[str, ModuleType], path: Path
) -> None:
    assert isinstance(await replay(variants["deprecated"], path), NondeterminismError)
