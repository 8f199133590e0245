"""/admin/users: an admin manages users and their tokens; every change is in the audit trail and its CSV."""

from __future__ import annotations

import csv
import io
import re

import httpx

from domain.models import Role
from starter.audit_csv import cell
from store import users
from tests.cli.cli_test import enroll
from tests.integration.conftest import Stack
from tests.integration.lifecycle_test import created
from tests.security.conftest import CUSTOMER_ACCOUNT, PASSWORD, Person, person, portal_session


async def post(stack: Stack, who: Person, path: str, **data: str) -> httpx.Response:
    stack.api.cookies.clear()
    return await stack.api.post(path, data={"csrf_token": who.csrf, **data}, headers=who.session)


async def sign_in(stack: Stack, email: str, password: str) -> int:
    stack.api.cookies.clear()
    cookie, csrf = portal_session(stack.settings, None)
    form = {"csrf_token": csrf, "email": email, "password": password}
    response = await stack.api.post("/signin", data=form, headers={"Cookie": cookie})
    return response.status_code


async def audit_rows(stack: Stack, who: Person) -> list[dict[str, str]]:
    response = await stack.api.get("/api/audit.csv", headers=who.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_an_admin_manages_users_and_tokens_and_every_change_is_audited(stack: Stack, admin: Person) -> None:
    page = await stack.api.get("/admin/users", headers=admin.session)
    assert page.status_code == 200 and "csm@provider.example" in page.text and "/admin/audit.csv" in page.text

    refused = await post(stack, admin, "/admin/users", email="x\r\nBcc: a@b.example", role="boss", password="short")
    assert refused.status_code == 422
    assert "short" not in refused.text  # a password is never shown again
    for field in ("Email address", "Role", "Initial password"):
        assert f"{field} " in refused.text
    unbound = await post(stack, admin, "/admin/users", email="c@customer.example", role="customer", password=PASSWORD)
    assert unbound.status_code == 422 and "member account" in unbound.text
    taken = await post(stack, admin, "/admin/users", email="csm@provider.example", role="csm", password=PASSWORD)
    assert taken.status_code == 422 and "already the email of a user" in taken.text
    stack.api.cookies.clear()
    forged = await stack.api.post("/admin/users", data={"email": "z@y.example", "role": "csm", "password": PASSWORD})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/signin")
    no_csrf = await stack.api.post(
        "/admin/users", data={"email": "z@y.example", "role": "csm", "password": PASSWORD}, headers=admin.session
    )
    assert no_csrf.status_code == 403

    new_user = {"email": "New.Sales@Provider.example", "role": "sales", "password": PASSWORD}
    added = await post(stack, admin, "/admin/users", **new_user)
    assert added.status_code == 303 and added.headers["location"] == "/admin/users?done=added"
    assert await sign_in(stack, "new.sales@provider.example", PASSWORD) == 303
    new = await users.user_by_email(stack.settings.effective_database_url, "new.sales@provider.example")
    assert new is not None and new.role == "sales"

    token = await users.create_token(stack.settings.effective_database_url, new.email)
    page = await stack.api.get(f"/admin/users/{new.id}", headers=admin.session)
    token_id = re.search(r"/tokens/([0-9a-f]+)/revoke", page.text)
    assert page.status_code == 200 and token_id is not None and token not in page.text
    revoked = await post(stack, admin, f"/admin/users/{new.id}/tokens/{token_id.group(1)}/revoke")
    assert revoked.status_code == 303
    auth = {"Authorization": f"Bearer {token}"}
    assert (await stack.api.get("/api/enrollments", headers=auth)).status_code == 401
    assert (await post(stack, admin, f"/admin/users/{new.id}/tokens/nope/revoke")).status_code == 404

    assert (await post(stack, admin, f"/admin/users/{new.id}/disable")).status_code == 303
    assert await sign_in(stack, new.email, PASSWORD) == 401
    assert (await post(stack, admin, f"/admin/users/{new.id}/enable")).status_code == 303
    assert await sign_in(stack, new.email, PASSWORD) == 303
    myself = await post(stack, admin, f"/admin/users/{admin.user_id}/disable")
    assert myself.status_code == 409 and "cannot disable yourself" in myself.text

    rows = [r for r in await audit_rows(stack, admin) if r["actor"] == admin.email]
    assert [r["event"] for r in rows] == ["user added", "token revoked", "user disabled", "user enabled"]
    assert all(r["source"] == "127.0.0.1" and not r["enrollment_id"] and not r["account_id"] for r in rows)
    assert "new.sales@provider.example: role sales" in rows[0]["note"]
    assert PASSWORD not in (await stack.api.get("/api/audit.csv", headers=admin.auth)).text
    page = await stack.api.get("/admin/users", headers=admin.session)
    assert "user enabled" in page.text and "127.0.0.1" in page.text


async def test_a_customer_user_is_bound_to_an_existing_account(stack: Stack, admin: Person) -> None:
    bad = await post(stack, admin, "/admin/users", email="c@c.example", role="customer", account_id=CUSTOMER_ACCOUNT)
    assert bad.status_code == 422 and "must be the id of the member account" in bad.text
    staff = await post(
        stack, admin, "/admin/users", email="s@c.example", role="csm", account_id="acct-1", password=PASSWORD
    )
    assert staff.status_code == 422 and "must be left empty" in staff.text


async def test_the_export_is_for_admins_only_and_safe_to_open_in_a_spreadsheet(stack: Stack, admin: Person) -> None:
    assert [cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "plain", None)] == [
        "'=1+1",
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "plain",
        "",
    ]
    enrollment_id = await created(stack, organization_name="=HYPERLINK(1) Ltd")
    note = '=HYPERLINK("http://evil.example","x")'
    edit = {"audit_note": note, "users_purchased": 1200}
    edited = await stack.api.patch(f"/api/enrollments/{enrollment_id}", json=edit, headers=stack.auth)
    assert edited.status_code == 200, edited.text
    rows = await audit_rows(stack, admin)
    mine = [r for r in rows if r["enrollment_id"] == enrollment_id]
    assert [r["event"] for r in mine] == ["created", "invited", "edited"]
    assert mine[-1]["note"] == "'" + note and mine[-1]["actor"] == "csm@provider.example"
    assert mine[0]["source"] == mine[-1]["source"] == "127.0.0.1"
    assert mine[1]["actor"] == "system" and mine[1]["source"] == ""

    csm = await person(stack.settings, Role.csm, "another.csm@provider.example")
    assert (await stack.api.get("/api/audit.csv", headers=csm.auth)).status_code == 403
    assert (await stack.api.get("/admin/audit.csv", headers=csm.session)).status_code == 403
    portal = await stack.api.get("/admin/audit.csv", headers=admin.session)
    assert portal.status_code == 200 and portal.text.startswith("at,actor,source,event,enrollment_id,account_id,note")


async def test_the_command_line_records_its_changes_too(stack: Stack, admin: Person) -> None:
    code, _, err = await enroll(
        stack, "users", "add", "ops@provider.example", "--role", "reviewer", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    code, out, _ = await enroll(stack, "tokens", "create", "ops@provider.example", "--expires-in", "1d")
    assert code == 0
    assert (await enroll(stack, "users", "disable", "ops@provider.example"))[0] == 0
    rows = [r for r in await audit_rows(stack, admin) if "ops@provider.example" in r["note"]]
    assert [r["event"] for r in rows] == ["user added", "token created", "user disabled"]
    assert all(r["actor"].startswith("command line (") and r["source"] == "local" for r in rows)
    assert out.strip().splitlines()[-1] not in "".join(r["note"] for r in rows)
