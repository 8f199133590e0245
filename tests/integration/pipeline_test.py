"""The create pipeline on real parts: API → Temporal → worker → store and SMTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from domain.models import Role
from store.enrollments import get_enrollment
from tests.integration.conftest import VALID, Stack, eventually


async def test_create_invites_the_contact_once_and_shows_new_everywhere(stack: Stack) -> None:
    response = await stack.create()
    assert response.status_code == 201, response.text
    body = response.json()
    enrollment_id = body["id"]
    assert isinstance(enrollment_id, str) and body["status"] == "New"

    await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 1)
    (invitation,) = stack.mail_to("pat@acme.example")
    assert "Acme Widgets Ltd" in invitation.subject
    assert invitation.text is not None and invitation.html is not None
    links = [word for word in invitation.text.split() if "/enroll/" in word]
    assert len(links) == 1 and links[0].startswith("http://testserver/enroll/")
    assert invitation.message_id == f"<enrollment-{enrollment_id}.invite-1@localhost>"

    page = (await stack.api.get("/api/enrollments", params={"status": "New"}, headers=stack.auth)).json()
    assert [item["id"] for item in page["items"]] == [enrollment_id]
    assert page["next_cursor"] is None

    detail = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
    assert detail["status"] == "New" and detail["invitation_sent_at"] is not None
    assert [event["event"] for event in detail["timeline"]] == ["created", "invited"]
    assert (await stack.query(enrollment_id)).status.value == "New"

    handle = stack.handle(enrollment_id)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING

    async def visible() -> bool:
        query = f'EnrollmentStatus="New" AND MemberType="customer" AND WorkflowId="enrollment-{enrollment_id}"'
        return [w.id async for w in stack.temporal.client.list_workflows(query)] == [f"enrollment-{enrollment_id}"]

    await eventually(visible)
    attributes = description.typed_search_attributes
    values = [pair.value for pair in attributes]
    for value in values:
        assert "acme" not in str(value).lower() and "@" not in str(value)
    assert "@" not in handle.id and "acme" not in handle.id.lower()


BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("service_end_date", {"service_end_date": date.today().isoformat()}),
    ("service_end_date", {"service_end_date": (date.today() - timedelta(days=1)).isoformat()}),
    ("service_end_date", {"service_end_date": "31/12/2030"}),
    ("service_end_date", {"service_end_date": None}),
    ("member_type", {"member_type": "partner"}),
    ("member_type", {"member_type": None}),
    ("display_users_purchased", {"display_users_purchased": "maybe"}),
    ("display_users_purchased", {"member_type": "reseller", "users_purchased": None}),
    ("users_purchased", {"users_purchased": None}),
    ("users_purchased", {"users_purchased": 0}),
    ("users_purchased", {"users_purchased": 10.5}),
    ("users_purchased", {"display_users_purchased": False, "users_purchased": 10}),
    ("organization_name", {"organization_name": "A"}),
    ("organization_name", {"organization_name": "x" * 201}),
    ("organization_name", {"organization_name": "Acme\nWidgets"}),
    ("organization_name", {"organization_name": None}),
    ("corporate_contact_email", {"corporate_contact_email": "not-an-address"}),
    ("corporate_contact_email", {"corporate_contact_email": "pat@acme.example\r\nBcc: all@acme.example"}),
    ("corporate_contact_email", {"corporate_contact_email": None}),
    (
        "reseller_account_id",
        {
            "member_type": "reseller",
            "display_users_purchased": False,
            "users_purchased": None,
            "reseller_account_id": "r1",
        },
    ),
]


@pytest.mark.parametrize(("field", "changes"), BAD_INPUTS)
async def test_bad_input_names_the_field_and_starts_nothing(stack: Stack, field: str, changes: dict[str, Any]) -> None:
    response = await stack.create(**changes)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    page = (await stack.api.get("/api/enrollments", headers=stack.auth)).json()
    assert page["items"] == []
    assert stack.mail() == []


async def test_every_bad_field_is_named_at_once(stack: Stack) -> None:
    response = await stack.api.post(
        "/api/enrollments",
        json={"member_type": "partner", "organization_name": "", "corporate_contact_email": "x"},
        headers=stack.auth,
    )
    assert response.status_code == 422
    named = {error["field"] for error in response.json()["errors"]}
    assert {"service_end_date", "member_type", "organization_name", "corporate_contact_email"} <= named


async def test_malformed_bodies_get_a_422_not_a_500(stack: Stack) -> None:
    for content in [b"{not json", b"[1, 2]", b"\xff\xfe"]:
        response = await stack.api.post(
            "/api/enrollments", content=content, headers={**stack.auth, "content-type": "application/json"}
        )
        assert response.status_code == 422, content
        assert response.json()["errors"][0]["field"] == "body"


async def test_same_organization_while_open_is_a_409(stack: Stack) -> None:
    assert (await stack.create()).status_code == 201
    again = await stack.create(organization_name="  ACME   widgets ltd ", corporate_contact_email="lee@acme.example")
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    await eventually(lambda: len(stack.mail()) == 1)
    await asyncio.sleep(0.5)
    assert len(stack.mail()) == 1


async def test_concurrent_posts_with_one_idempotency_key_make_one_enrollment_and_one_email(stack: Stack) -> None:
    headers = {**stack.auth, "Idempotency-Key": "order-4711"}
    responses = await asyncio.gather(
        *[stack.api.post("/api/enrollments", json=VALID, headers=headers) for _ in range(5)]
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    later = await stack.api.post("/api/enrollments", json=VALID, headers=headers)
    assert later.status_code == 201 and later.headers["Idempotent-Replayed"] == "true"
    assert later.json()["id"] == responses[0].json()["id"]
    await eventually(lambda: len(stack.mail()) == 1)
    await asyncio.sleep(0.5)
    assert len(stack.mail()) == 1
    page = (await stack.api.get("/api/enrollments", headers=stack.auth)).json()
    assert len(page["items"]) == 1


async def test_only_admin_csm_and_sales_may_create(stack: Stack) -> None:
    assert (await stack.api.post("/api/enrollments", json=VALID)).status_code == 401
    bad_token = {"Authorization": "Bearer enr_not-a-token"}
    assert (await stack.api.post("/api/enrollments", json=VALID, headers=bad_token)).status_code == 401
    reviewer = await stack.token_for("reviewer@provider.example", Role.reviewer)
    refused = await stack.api.post("/api/enrollments", json=VALID, headers={"Authorization": f"Bearer {reviewer}"})
    assert refused.status_code == 403
    for number, role in enumerate([Role.sales, Role.admin]):
        token = await stack.token_for(f"{role.value}@provider.example", role)
        body = {**VALID, "organization_name": f"Org number {number}"}
        created = await stack.api.post("/api/enrollments", json=body, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text


async def test_list_filters_and_paginates(stack: Stack) -> None:
    for number in range(7):
        member_type = "reseller" if number % 2 else "customer"
        extra: dict[str, Any] = {"display_users_purchased": False, "users_purchased": None} if number % 2 else {}
        response = await stack.create(
            organization_name=f"Globex {number} GmbH",
            member_type=member_type,
            **extra,
            corporate_contact_email=f"c{number}@globex.example",
        )
        assert response.status_code == 201, response.text
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await stack.api.get("/api/enrollments", params=params, headers=stack.auth)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    resellers = (await stack.api.get("/api/enrollments", params={"member_type": "reseller"}, headers=stack.auth)).json()
    assert len(resellers["items"]) == 3
    found = (await stack.api.get("/api/enrollments", params={"q": "globex 4"}, headers=stack.auth)).json()
    assert [item["organization_name"] for item in found["items"]] == ["Globex 4 GmbH"]
    bad = await stack.api.get("/api/enrollments", params={"status": "Nope"}, headers=stack.auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    assert (await stack.api.get("/api/enrollments/unknown", headers=stack.auth)).status_code == 404


async def test_health_reports_temporal_and_store(stack: Stack) -> None:
    response = await stack.api.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_openapi_describes_the_create_body(stack: Stack) -> None:
    """The OpenAPI document shows the create body's fields (the model the route parses, a named component)."""
    spec = (await stack.api.get("/openapi.json")).json()
    create = spec["paths"]["/api/enrollments"]["post"]
    reference = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert "organization_name" in schema["properties"]


async def test_the_store_row_and_workflow_come_together(stack: Stack) -> None:
    body = (await stack.create()).json()
    row = await get_enrollment(stack.settings.effective_database_url, body["id"])
    assert row is not None and row.status.value == "New"
    assert (await stack.handle(body["id"]).describe()).status == WorkflowExecutionStatus.RUNNING
