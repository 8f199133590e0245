"""Member administrators on real parts: approval makes the contacts administrators, each emailed an activation
link by a workflow of its own whose history holds neither the link nor the address; an address of another
account's user is not attached; resend and activation through the service; the sweep's schedule."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from domain.models import Actor, AdministratorStatus, InactiveSweep, Role
from starter.services.administrators import AdministratorService
from store import administrators, users
from store.administrators import LinkState
from tests.integration.conftest import Stack, eventually
from tests.integration.lifecycle_test import FORM
from tests.support import make_settings
from workflows.administrator import AdministratorWorkflow
from workflows.inactive import SCHEDULE_ID, ensure_schedule
from workflows.names import administrator_workflow_id

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
INVITATION = re.compile(r"http://testserver/activate/([A-Za-z0-9_-]+)")
Headers = dict[str, str]


def readable(history: Any) -> str:
    """A history as JSON, with every payload's data decoded too (it is base64 in the JSON)."""
    text = history.to_json()
    decoded = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                decoded.append(base64.b64decode(data).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))
    return "\n".join([text, *decoded])


async def approve(stack: Stack, reviewer: Headers, org: str, contact: str, technical: str) -> str:
    """Create, submit (with `technical` as the technical contact), review and approve: the account id."""
    response = await stack.create(organization_name=org, corporate_contact_email=contact)
    assert response.status_code == 201, response.text
    enrollment_id = response.json()["id"]

    async def invited() -> bool:
        view = await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)
        return "invited" in [e["event"] for e in view.json()["timeline"]]

    await eventually(invited)
    submitted = await stack.api.post(stack.form_link(contact), data={**FORM, "technical_contact_email": technical})
    assert submitted.status_code == 303, submitted.text
    url = f"/api/enrollments/{enrollment_id}/review"
    assert (await stack.api.post(f"{url}/start", json={"audit_note": "checking"}, headers=reviewer)).status_code == 200
    done = await stack.api.post(f"{url}/approve", json={"audit_note": "fine"}, headers=reviewer)
    assert done.status_code == 200, done.text
    account_id: str = done.json()["account_id"]
    return account_id


def invitations(stack: Stack, address: str) -> list[str]:
    """The activation tokens emailed to `address`, oldest first (the mailbox lists newest first)."""
    found = [INVITATION.search(m.text or "") for m in reversed(stack.mail_to(address))]
    return [match.group(1) for match in found if match]


async def administrators_of(stack: Stack, account_id: str) -> dict[str, administrators.Administrator]:
    return {
        a.email: a for a in await administrators.list_administrators(stack.settings.effective_database_url, account_id)
    }


@SQLITE_ONLY
async def test_approval_invites_the_contacts_and_skips_another_accounts_user(stack: Stack) -> None:
    url = stack.settings.effective_database_url
    reviewer = {"Authorization": f"Bearer {await stack.token_for('rev@provider.example', Role.reviewer)}"}

    acme = await approve(stack, reviewer, "Acme Widgets Ltd", "pat@acme.example", "sam@acme.example")
    await eventually(lambda: all(len(invitations(stack, a)) == 1 for a in ("pat@acme.example", "sam@acme.example")))
    admins = await administrators_of(stack, acme)
    assert {a: admins[a].role for a in admins} == {"pat@acme.example": "customer", "sam@acme.example": "customer"}
    for address, administrator in admins.items():
        (token,) = invitations(stack, address)
        state, user = await administrators.link_state(url, token, administrators.ACTIVATION)
        assert state == LinkState.live and user is not None and user.id == administrator.user_id
        assert administrator.status == AdministratorStatus.invited
        history = readable(
            await stack.temporal.client.get_workflow_handle(
                administrator_workflow_id(administrator.user_id)
            ).fetch_history()
        )
        assert token not in history and address not in history
        assert "administrator invited" in history  # decoded: the payloads were read

    same = await approve(stack, reviewer, "Globex Corp", "lee@globex.example", "lee@globex.example")
    await eventually(lambda: len(invitations(stack, "lee@globex.example")) == 1)
    assert list(await administrators_of(stack, same)) == ["lee@globex.example"]

    other = await approve(stack, reviewer, "Initech Ltd", "kim@initech.example", "sam@acme.example")
    await eventually(lambda: bool(stack.mail_to("rev@provider.example")))
    notice = stack.mail_to("rev@provider.example")[0]
    assert "Initech Ltd" in notice.subject and "sam@acme.example" in (notice.text or "")
    assert list(await administrators_of(stack, other)) == ["kim@initech.example"]
    timeline = (await stack.api.get(f"/api/accounts/{other}", headers=stack.auth)).json()["timeline"]
    events = {e["event"]: e["note"] for e in timeline}
    assert "sam@acme.example" in events["administrator not attached"]
    assert events["administrators invited"] == "1 invited; 1 contact not attached"
    assert len(invitations(stack, "sam@acme.example")) == 1  # not invited again
    account_history = readable(await stack.temporal.client.get_workflow_handle(f"account-{other}").fetch_history())
    assert "belongs to a user of another account" not in account_history


@SQLITE_ONLY
async def test_resend_kills_the_old_link_and_activation_ends_the_run(stack: Stack) -> None:
    url = stack.settings.effective_database_url
    reviewer = {"Authorization": f"Bearer {await stack.token_for('rev@provider.example', Role.reviewer)}"}
    account_id = await approve(stack, reviewer, "Acme Widgets Ltd", "pat@acme.example", "pat@acme.example")
    await eventually(lambda: len(invitations(stack, "pat@acme.example")) == 1)
    pat = (await administrators_of(stack, account_id))["pat@acme.example"]
    service = AdministratorService(stack.settings, stack.temporal.client)
    csm = Actor(user_id="csm", email="csm@provider.example", kind="csm")

    await service.resend(account_id, pat.user_id, csm)
    await eventually(lambda: len(invitations(stack, "pat@acme.example")) == 2)
    old, new = invitations(stack, "pat@acme.example")
    assert (await administrators.link_state(url, old, administrators.ACTIVATION))[0] == LinkState.dead
    assert (await administrators.link_state(url, new, administrators.ACTIVATION))[0] == LinkState.live

    await administrators.activate(url, new, await users.hash_password("a long enough password"))
    await service.notify_activated(pat.user_id)
    handle = stack.temporal.client.get_workflow_handle_for(
        AdministratorWorkflow.run, administrator_workflow_id(pat.user_id)
    )
    assert (await handle.result()).status == AdministratorStatus.active
    await service.notify_activated(pat.user_id)  # the run has ended: nothing to tell, no error
    with pytest.raises(Exception, match="already activated"):
        await service.resend(account_id, pat.user_id, csm)


async def test_the_sweep_schedule_is_created_once_and_kept(temporal: WorkflowEnvironment, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}",
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=1,
        task_queue="schedule-test",
    )
    handle = temporal.client.get_schedule_handle(SCHEDULE_ID)
    try:
        await ensure_schedule(temporal.client, settings)
        await ensure_schedule(temporal.client, settings.model_copy(update={"inactive_disable_days": 90}))
        described = await handle.describe()
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "InactiveAdministratorsWorkflow"
        (sweep,) = await temporal.client.data_converter.decode(action.args, [InactiveSweep])
        assert sweep == InactiveSweep(days=90)
    finally:
        await handle.delete()
