"""GET /api/events on real parts (Temporal dev server, worker, SMTP, both databases): an enrollment's creation and
its invitation come out as events a client polls for with the cursor it was given; a reseller's token sees its own
customers' events alone; a type or cursor the API does not know is a 422 naming its field."""

from __future__ import annotations

import json
import re
from typing import Any

from domain.models import Role
from tests.integration.accounts_test import Headers, bearer, json_of
from tests.integration.conftest import Stack, eventually
from tests.integration.partner_lifecycle_test import CUSTOMER, reseller

SECRET_LOOKING = re.compile(r"/enroll/|/activate/|whsec_|enr_")
"""What an event must never carry: a form or activation link, a webhook secret, an API token."""


async def events_after(stack: Stack, headers: Headers, cursor: str | None, **params: Any) -> tuple[list[Any], str]:
    query = {**params, **({"after": cursor} if cursor else {})}
    response = await stack.api.get("/api/events", params=query, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["next_cursor"], str) and body["next_cursor"], "a cursor is always given"
    return body["items"], body["next_cursor"]


async def poll_until(stack: Stack, headers: Headers, cursor: str | None, count: int, **params: Any) -> list[Any]:
    """Poll from `cursor` as a client would (each time after the cursor it was given) until `count` events came."""
    seen: list[Any] = []
    position = cursor

    async def arrived() -> bool:
        nonlocal position
        items, position = await events_after(stack, headers, position, **params)
        seen.extend(items)
        return len(seen) >= count

    await eventually(arrived)
    return seen


async def test_an_enrollments_creation_and_invitation_come_out_as_events_a_client_polls_for(stack: Stack) -> None:
    admin = bearer(await stack.token_for("admin@provider.example", Role.admin))
    before, cursor = await events_after(stack, admin, None)
    assert before == []

    created = await stack.create()
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    wanted = {"type": "enrollment.created,enrollment.invited"}
    got = await poll_until(stack, admin, cursor, 2, **wanted)

    assert [e["type"] for e in got] == ["enrollment.created", "enrollment.invited"]
    assert all(re.fullmatch(r"evt_[a-z2-7]{26}", e["id"]) for e in got) and got[0]["id"] != got[1]["id"]
    assert {e["data"]["id"] for e in got} == {enrollment_id}
    assert got[0]["data"]["status"] == "New" and got[0]["data"]["invitation_sent_at"] is None
    shown = await json_of(stack, f"/api/enrollments/{enrollment_id}", stack.auth)
    timeline = {entry["event"]: entry["at"] for entry in shown.pop("timeline")}
    assert got[1]["data"] == shown, "the data is the enrollment as the API shows it, without its timeline"
    assert [e["created_at"] for e in got] == [timeline["created"], timeline["invited"]], "when the change happened"
    assert not SECRET_LOOKING.search(json.dumps(got))

    # The same events from the start, the type repeated rather than comma-separated; then nothing new since.
    again, last = await events_after(stack, admin, None, type=["enrollment.invited", "enrollment.created"])
    assert [e["id"] for e in again] == [e["id"] for e in got]
    assert await events_after(stack, admin, last, **wanted) == ([], last), "an empty page answers the cursor again"
    one, after_one = await events_after(stack, admin, None, limit=1, **wanted)
    rest, _ = await events_after(stack, admin, after_one, **wanted)
    assert [e["id"] for e in one + rest] == [e["id"] for e in got]

    unknown = {"type": "enrollment.created,enrollment.exploded"}
    bad_type = await stack.api.get("/api/events", params=unknown, headers=admin)
    assert bad_type.status_code == 422 and [e["field"] for e in bad_type.json()["errors"]] == ["type"]
    bad_cursor = await stack.api.get("/api/events", params={"after": "not-a-cursor"}, headers=admin)
    assert bad_cursor.status_code == 422 and [e["field"] for e in bad_cursor.json()["errors"]] == ["after"]
    refused = await stack.api.get("/api/events", headers=stack.auth)
    assert refused.status_code == 403 and "may not read events" in refused.json()["detail"]


async def test_a_resellers_token_reads_its_own_customers_events_alone(stack: Stack) -> None:
    admin = bearer(await stack.token_for("admin@provider.example", Role.admin))
    reviewer = bearer(await stack.token_for("rev@provider.example", Role.reviewer))
    reseller_id, partner = await reseller(stack, reviewer)
    _, start = await events_after(stack, admin, None, limit=200)

    theirs = await stack.api.post("/api/enrollments", json=CUSTOMER, headers=partner)
    assert theirs.status_code == 201, theirs.text
    direct = await stack.create(organization_name="Direct Customer Ltd", corporate_contact_email="kim@direct.example")
    assert direct.status_code == 201, direct.text
    ids = {theirs.json()["id"], direct.json()["id"]}
    everything = await poll_until(stack, admin, start, 4, type="enrollment.invited,enrollment.created")
    assert {e["data"]["id"] for e in everything} == ids, "an admin sees every customer's"

    seen = await poll_until(stack, partner, None, 2, type="enrollment.created,enrollment.invited")
    assert {e["data"]["id"] for e in seen} == {theirs.json()["id"]}
    mine, _ = await events_after(stack, partner, None, limit=200)
    assert mine and all(e["data"]["reseller_account_id"] == reseller_id for e in mine)
    assert direct.json()["id"] not in json.dumps(mine)
    # The reseller's own account's events (its activation) are about no customer of its: not in its list.
    assert not [e for e in mine if e["type"] == "account.activated" and e["data"]["id"] == reseller_id]
    activations = await poll_until(stack, admin, None, 1, type="account.activated")
    assert reseller_id in [e["data"]["id"] for e in activations], "an admin sees it"
