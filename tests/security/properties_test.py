"""Properties of the two ways in that take free input, over many generated requests on the real stack:
POST /api/enrollments and the contact's form never answer 5xx, valid bodies are created, errors name fields."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.rules import ACCOUNT_FIELDS, CONTACT_FORM_EMAILS, CONTACT_FORM_TEXT
from tests.integration.conftest import Stack
from tests.integration.lifecycle_test import FORM, created
from tests.security.conftest import client_from

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Numbers within what JSON parsers agree on; bigger ones are tests/security/hostile_input_test.py's business.
scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=300)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner), max_leaves=12
)
plausible = {
    "service_end_date": st.dates().map(str) | values,
    "member_type": st.sampled_from(["customer", "reseller", "manufacturer", "partner", ""]) | values,
    "display_users_purchased": st.sampled_from([True, False, "yes", "no", "maybe"]) | values,
    "users_purchased": st.integers(-5, 2_000_000_000) | st.text(max_size=20) | values,
    "organization_name": st.text(max_size=250) | values,
    "corporate_contact_email": st.emails() | st.text(max_size=300) | values,
    "reseller_account_id": st.text(max_size=80) | values,
}
bodies = st.fixed_dictionaries({}, optional=plausible) | st.dictionaries(st.text(max_size=30), values, max_size=8)
name_text = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn")), min_size=0, max_size=150
)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    member_type = draw(st.sampled_from(["customer", "reseller", "manufacturer"]))
    display = member_type == "customer" and draw(st.booleans())
    body: dict[str, Any] = {
        "service_end_date": str(datetime.now(UTC).date() + timedelta(days=draw(st.integers(2, 3650)))),
        "member_type": member_type,
        "display_users_purchased": display,
        "organization_name": f"{draw(name_text)} {uuid.uuid4().hex[:10]}",
        "corporate_contact_email": draw(st.emails(domains=st.just("acme.example"))),
    }
    if display:
        body["users_purchased"] = draw(st.integers(1, 1_000_000_000))
    return body


@SETTINGS
@given(body=bodies | values)
async def test_any_json_body_gets_a_4xx_that_names_real_fields(stack: Stack, body: Any) -> None:
    content = json.dumps(body).encode()
    response = await stack.api.post(
        "/api/enrollments", content=content, headers={**stack.auth, "content-type": "application/json"}
    )
    assert response.status_code < 500, response.text
    if response.status_code == 422:
        sent = set(body) if isinstance(body, dict) else set()
        named = {error["field"] for error in response.json()["errors"]}
        assert named and named <= {*ACCOUNT_FIELDS, *sent, "body"}, named


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=valid_bodies())
async def test_every_valid_body_is_created_as_sent(stack: Stack, body: dict[str, Any]) -> None:
    response = await stack.api.post("/api/enrollments", json=body, headers=stack.auth)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["status"] == "New" and made["organization_name"] == body["organization_name"].strip()
    assert made["member_type"] == body["member_type"] and made["service_end_date"] == body["service_end_date"]
    assert made["users_purchased"] == body.get("users_purchased")


form_values = st.text(max_size=300) | st.sampled_from(["", "yes", "on", "+44 20 7946 0000", "sam@acme.example"])
form_fields = st.sampled_from([*CONTACT_FORM_TEXT, *CONTACT_FORM_EMAILS, "accept_terms"]) | st.text(max_size=20)


@SETTINGS
@given(changes=st.dictionaries(form_fields, form_values, max_size=14), drop=st.sets(st.sampled_from(list(FORM))))
async def test_any_contact_form_gets_its_form_back_or_is_accepted(
    stack: Stack, changes: dict[str, str], drop: set[str]
) -> None:
    link = await link_of(stack)
    data = {k: v for k, v in {**FORM, **changes}.items() if k not in drop}
    async with client_from(stack, "203.0.113.50") as contact:  # an app of its own: rate limits start afresh
        response = await contact.post(link, data=data)
    assert response.status_code in (303, 410, 422), response.status_code
    if response.status_code == 303:
        LINKS.pop(id(stack))


LINKS: dict[int, str] = {}


async def link_of(stack: Stack) -> str:
    """A live form link (a new enrollment once the last one was submitted)."""
    if id(stack) not in LINKS:
        address = f"contact-{uuid.uuid4().hex[:8]}@acme.example"
        await created(stack, organization_name=f"Form {uuid.uuid4().hex[:8]} Ltd", corporate_contact_email=address)
        LINKS[id(stack)] = stack.form_link(address)
    return LINKS[id(stack)]
