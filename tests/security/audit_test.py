"""The audit trail: every change carries who, when and from which address; nothing can rewrite it."""

from __future__ import annotations

import contextlib

import pytest
from alembic import command
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from domain.models import AccountView, Actor, Role
from store import audit
from store.db import transaction
from store.migrate import alembic_config
from store.tables import TimelineEntry
from tests.integration.conftest import Stack, eventually
from tests.integration.lifecycle_test import FORM, created
from tests.security.conftest import client_from, person


async def test_every_change_carries_its_source_address_into_both_timelines(stack: Stack) -> None:
    reviewer = await person(stack.settings, Role.reviewer)
    async with client_from(stack, "203.0.113.9") as office, client_from(stack, "2001:db8::7") as remote:
        stack.api = office
        enrollment_id = await created(stack)
        edit = {"users_purchased": 1500, "audit_note": "order grew"}
        changed = await remote.patch(f"/api/enrollments/{enrollment_id}", json=edit, headers=stack.auth)
        assert changed.status_code == 200, changed.text
        timeline = changed.json()["timeline"]
        assert [(e["event"], e["actor"], e["source"]) for e in timeline] == [
            ("created", "csm@provider.example", "203.0.113.9"),
            ("invited", "system", None),
            ("edited", "csm@provider.example", "2001:db8::7"),
        ]
        page = await office.get(f"/enrollments/{enrollment_id}?tab=timeline", headers=reviewer.session)
        assert page.status_code == 200
        assert "from 203.0.113.9" in page.text and "from 2001:db8::7" in page.text

        assert (await office.post(stack.form_link("pat@acme.example"), data=FORM)).status_code == 303
        for step in ("start", "approve"):
            url = f"/api/enrollments/{enrollment_id}/review/{step}"
            response = await remote.post(url, json={"audit_note": step}, headers=reviewer.auth)
            assert response.status_code == 200, response.text
        account = stack.temporal.client.get_workflow_handle(f"account-{enrollment_id}")

        async def activated() -> bool:
            with contextlib.suppress(Exception):
                return bool((await account.query("status", result_type=AccountView)).timeline)
            return False

        await eventually(activated)
        suspended = await office.post(
            f"/api/accounts/{enrollment_id}/suspend", json={"audit_note": "unpaid"}, headers=reviewer.auth
        )
        assert suspended.status_code == 200, suspended.text
        view = await account.query("status", result_type=AccountView)
        events = [(e.event, e.source) for e in view.timeline if not e.event.startswith("administrator")]
        # Activated by the approval (sent from the remote address), suspended from the office; the contacts'
        # invitations as administrators come between, from the system.
        assert events == [("activated", "2001:db8::7"), ("suspended", "203.0.113.9")]


async def test_the_timeline_is_append_only_in_the_database(database_url: str) -> None:
    async with transaction(database_url) as session:
        audit.append(session, event="user added", by=Actor(email="a@b.example", source="192.0.2.1"), note="x")
    for statement in (update(TimelineEntry).values(note="rewritten"), delete(TimelineEntry)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(database_url) as session:
                await session.execute(statement)
    entries = await audit.entries(database_url)
    assert [(e.event, e.actor, e.source, e.note) for e in entries] == [("user added", "a@b.example", "192.0.2.1", "x")]


async def test_the_migrations_build_the_schema_the_code_expects(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises when the tables and the migrations differ
