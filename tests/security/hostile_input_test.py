"""Whatever is typed or sent: a clean 4xx that names the problem, never a 500; markup and template syntax stay
text in pages and emails; no header reaches an email with a line break in it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.email import build_message
from domain.models import EmailKind, EmailRequest, EnrollmentStatus, EnrollmentView, MemberType, Role
from domain.settings import Settings
from tests.integration.conftest import VALID, Stack
from tests.integration.lifecycle_test import FORM, created
from tests.security.conftest import Person, person

MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)"> {{ 7*7 }} {% raw %} Ltd'
JSON = {"content-type": "application/json"}
NOT_OBJECTS: list[tuple[dict[str, str], bytes]] = [
    ({"content-type": "text/plain"}, b'{"organization_name": "Acme Ltd"}'),
    ({"content-type": "application/x-www-form-urlencoded"}, b"organization_name=Acme+Ltd"),
    ({"content-type": "multipart/form-data; boundary=x"}, b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1'),
    ({}, b'{"organization_name": "Acme Ltd"}'),
    (JSON, b'{"organization_name": '),
    (JSON, b"\xff\xfe{}"),
    (JSON, b"[1, 2]"),
    (JSON, b'"just a string"'),
    (JSON, b"null"),
    (JSON, b""),
]


async def reviewer_of(stack: Stack) -> Person:
    return await person(stack.settings, Role.admin, "admin.hostile@provider.example")


@pytest.mark.parametrize(("headers", "body"), NOT_OBJECTS)
async def test_api_bodies_that_are_not_json_objects_get_a_clean_422(
    stack: Stack, headers: dict[str, str], body: bytes
) -> None:
    admin = await reviewer_of(stack)
    for method, path in [
        ("POST", "/api/enrollments"),
        ("PATCH", "/api/enrollments/no-such-id"),
        ("POST", "/api/enrollments/no-such-id/review/reject"),
        ("POST", "/api/accounts/no-such-id/users-purchased"),
    ]:
        response = await stack.api.request(method, path, content=body, headers={**admin.auth, **headers})
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["errors"][0]["field"] == "body"


async def test_bodies_over_the_cap_get_413_whether_declared_or_streamed(stack: Stack) -> None:
    big = b"x" * (300 * 1024)

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 16 * 1024):
            yield big[start : start + 16 * 1024]

    for path, headers in [
        ("/api/enrollments", {**stack.auth, **JSON}),
        ("/enroll/no-such-link", {"content-type": "application/x-www-form-urlencoded"}),
        ("/signin", {"content-type": "application/x-www-form-urlencoded"}),
    ]:
        assert (await stack.api.post(path, content=big, headers=headers)).status_code == 413
        assert (await stack.api.post(path, content=streamed(), headers=headers)).status_code == 413


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"organization_name": "A" * 201}, "organization_name"),
        ({"organization_name": "Acme\x00 Ltd"}, "organization_name"),
        ({"organization_name": "Acme\u2028Ltd"}, "organization_name"),
        ({"organization_name": "Acme\u202eLtd"}, "organization_name"),
        ({"corporate_contact_email": "pat@acme.example\r\nBcc: all@evil.example"}, "corporate_contact_email"),
        ({"corporate_contact_email": "pat@acme.example\nSubject: hi"}, "corporate_contact_email"),
        ({"corporate_contact_email": "p" * 250 + "@acme.example"}, "corporate_contact_email"),
        ({"reseller_account_id": "x" * 65}, "reseller_account_id"),
        ({"users_purchased": "1" * 40}, "users_purchased"),
    ],
)
async def test_long_fields_control_characters_and_line_breaks_get_422(
    stack: Stack, changes: dict[str, Any], field: str
) -> None:
    response = await stack.create(**changes)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}


async def test_long_query_parameters_and_headers_get_422(stack: Stack) -> None:
    for params in [{"q": "x" * 201}, {"cursor": "x" * 501}, {"limit": "1000"}, {"status": "<b>New</b>"}]:
        response = await stack.api.get("/api/enrollments", params=params, headers=stack.auth)
        assert response.status_code == 422, params
    too_long = {**stack.auth, "Idempotency-Key": "k" * 201}
    assert (await stack.api.post("/api/enrollments", json=VALID, headers=too_long)).status_code == 422
    note = {"audit_note": "x" * 1001}
    assert (await stack.api.delete("/api/enrollments/x", params=note, headers=stack.auth)).status_code == 422


async def test_markup_and_template_syntax_stay_text_in_pages_and_emails(stack: Stack) -> None:
    name = "<script>alert(1)</script> Ltd"
    enrollment_id = await created(stack, organization_name=name)
    invitation = stack.mail_to("pat@acme.example")[0]
    assert invitation.html is not None and "&lt;script&gt;alert(1)&lt;/script&gt; Ltd" in invitation.html
    assert "<script>" not in invitation.html
    assert name in invitation.subject and "\n" not in invitation.subject

    other = await created(stack, organization_name=MARKUP, corporate_contact_email="lee@other.example")
    mail = stack.mail_to("lee@other.example")[0]
    # The name is printed as given: no template evaluated it (that would print "> 49 " where "{{ 7*7 }}" is).
    assert MARKUP in (mail.text or "") and "> 49 " not in (mail.text or "")
    assert "&lt;img src=x" in (mail.html or "") and "{{ 7*7 }}" in (mail.html or "")
    detail = await stack.api.get(f"/api/enrollments/{other}", headers=stack.auth)
    assert detail.json()["organization_name"] == MARKUP

    reviewer = await person(stack.settings, Role.reviewer)
    for url in [f"/enrollments/{enrollment_id}", f"/enrollments/{other}", "/enrollments?q=%3Cscript"]:
        page = await stack.api.get(url, headers=reviewer.session)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
    page = await stack.api.get(f"/enrollments/{other}", headers=reviewer.session)
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; {{ 7*7 }} {% raw %} Ltd" in page.text
    for response in [page, detail, await stack.api.get(stack.form_link("pat@acme.example"))]:
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_the_contact_form_answers_hostile_posts_with_its_own_pages(stack: Stack) -> None:
    await created(stack)
    link = stack.form_link("pat@acme.example")
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    attempts: list[dict[str, Any]] = [
        {"json": FORM},
        {"content": b"city=%FF%FE&country=\xff", "headers": urlencoded},
        {"files": {"city": ("city.txt", b"London")}, "data": {**FORM, "city": ""}},
        {"data": {**FORM, "city": "x" * 5000}},
        {"data": {**FORM, "city": "Lon\x00don"}},
        {"data": {**FORM, "technical_contact_email": "sam@acme.example\r\nBcc: all@evil.example"}},
        {"data": {key: MARKUP for key in FORM}},
    ]
    for kwargs in attempts:
        response = await stack.api.post(link, **kwargs)
        assert response.status_code == 422, kwargs
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script>alert" not in response.text
    forged = await stack.api.post("/enroll/" + "A" * 43, json=FORM)
    assert forged.status_code == 404


async def test_portal_forms_answer_hostile_input_with_their_own_pages(stack: Stack) -> None:
    csm = await person(stack.settings, Role.csm, "hostile.csm@provider.example")
    form = {
        "csrf_token": csm.csrf,
        "organization_name": "A" * 300,
        "member_type": "<b>customer</b>",
        "display_users_purchased": "perhaps",
        "users_purchased": "-1",
        "service_end_date": "2030-02-31",
        "corporate_contact_email": "pat@acme.example\r\nBcc: all@evil.example",
    }
    response = await stack.api.post("/accounts/new", data=form, headers=csm.session)
    assert response.status_code == 422
    assert "<b>customer</b>" not in response.text
    response = await stack.api.post("/accounts/new", data={**form, "organization_name": "x\x00"}, headers=csm.session)
    assert response.status_code == 422
    for url in ["/enrollments?cursor=%00%FF&sort=<b>", "/enrollments?status=%0d%0a", "/accounts/new?x=%FF"]:
        assert (await stack.api.get(url, headers=csm.session)).status_code < 500


def test_no_line_break_typed_anywhere_becomes_an_email_header() -> None:
    view = EnrollmentView(
        id="e1",
        status=EnrollmentStatus.approved,
        service_end_date=date(2030, 1, 1),
        member_type=MemberType.customer,
        display_users_purchased=False,
        users_purchased=None,
        organization_name="Acme\r\nBcc: all@evil.example",
        corporate_contact_email="pat@acme.example",
        reseller_account_id=None,
        created_at=datetime.now(UTC),
    )
    settings = Settings(_env_file=None, secret_key="test")
    message = build_message(settings, EmailRequest(kind=EmailKind.approved, enrollment=view, to=["p@a.example"]), "k")
    assert message["Bcc"] is None and "\n" not in str(message["Subject"])
    injected = EmailRequest(kind=EmailKind.approved, enrollment=view, to=["p@a.example\r\nBcc: x"])
    with pytest.raises(ApplicationError) as refused:
        build_message(settings, injected, "k")
    assert refused.value.type == "HeaderInjection"


async def test_deeply_nested_json_gets_a_422(stack: Stack) -> None:
    response = await stack.api.post("/api/enrollments", content=b"[" * 50_000, headers={**stack.auth, **JSON})
    assert response.status_code == 422


async def test_a_number_with_thousands_of_digits_gets_a_422(stack: Stack) -> None:
    body = b'{"users_purchased": ' + b"9" * 5000 + b"}"
    response = await stack.api.post("/api/enrollments", content=body, headers={**stack.auth, **JSON})
    assert response.status_code == 422


async def test_a_lone_surrogate_in_a_name_gets_a_422(stack: Stack) -> None:
    body = json.dumps({**VALID, "organization_name": "Acme \ud800 Ltd"}).encode()
    response = await stack.api.post("/api/enrollments", content=body, headers={**stack.auth, **JSON})
    assert response.status_code == 422
