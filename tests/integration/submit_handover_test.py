"""The contact's submit while the enrollment's run hands over to a fresh one (continue-as-new): the run turns the
update away with the `ContinuingAsNew` refusal, and the submit is tried again on the fresh run instead of telling
the contact the link is no longer valid."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from starter.app import create_app
from tests.faults.temporal_harness import FORM
from tests.integration.conftest import Stack, eventually
from workflows.common import CONTINUING_AS_NEW


class HandingOver:
    """A Temporal client whose first `submit_form` update meets the run handing over, exactly as the workflow
    refuses it while it drains (`_require` during continue-as-new); everything else goes to the real client."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_workflow_handle(self, *args: Any, **kwargs: Any) -> Any:
        return _Handle(self, self._client.get_workflow_handle(*args, **kwargs))

    def get_workflow_handle_for(self, *args: Any, **kwargs: Any) -> Any:
        return _Handle(self, self._client.get_workflow_handle_for(*args, **kwargs))


class _Handle:
    def __init__(self, owner: HandingOver, handle: Any) -> None:
        self._owner = owner
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    async def execute_update(self, update: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(update, "__name__", "") == "submit_form" and self._owner.refused == 0:
            self._owner.refused += 1
            raise WorkflowUpdateFailedError(
                ApplicationError(
                    "This enrollment is moving to a fresh run; try again in a moment.",
                    type=CONTINUING_AS_NEW,
                    non_retryable=True,
                )
            )
        return await self._handle.execute_update(update, *args, **kwargs)


async def test_a_submit_meeting_a_run_handing_over_is_accepted_on_the_fresh_run(stack: Stack) -> None:
    created = await stack.create()
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    await eventually(lambda: bool(stack.mail_to("pat@acme.example")))
    link = stack.form_link("pat@acme.example")

    app = create_app(stack.settings)
    handing_over = HandingOver(stack.temporal.client)
    app.state.temporal = handing_over
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        submitted = await api.post(link, data=FORM)
    assert handing_over.refused == 1, "the submit met the handover"
    assert submitted.status_code == 303 and submitted.headers["location"] == "/enroll/thanks", submitted.text[:500]
    assert "no longer valid" not in submitted.text

    async def pending_review() -> bool:
        got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
        return bool(got["status"] == "Pending Review")

    await eventually(pending_review)
