"""The access matrix: every route of the app against every role, as docs/access.md shows it.

A route that is not in MATRIX fails `test_every_route_is_in_the_matrix`, so a new endpoint or page cannot
slip in without someone deciding who may use it. Print the rows of docs/access.md with
`python -m tests.security.access_matrix_test`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from domain.access import PERMISSIONS, Permission
from domain.models import Role
from domain.settings import Settings
from starter.dev.api import create_dev_app as create_app
from starter.dev.mailsink import MailSink
from starter.portal.common import PortalRoute
from tests.integration.conftest import Stack
from tests.security.administrators_test import seed_accounts
from tests.security.conftest import PASSWORD, Person, person, portal_session, sqlite_stack
from workflows.codec import new_key_text

PUBLIC = "public"
SIGNED_IN = "signed in"
PROVIDER = "provider's signature"
"""A mail provider's webhook: authenticated by the provider's signature, not by who is signed in (401 for all)."""
Rule = Permission | str | tuple[Permission, ...]
"""A permission, PUBLIC or SIGNED_IN, or permissions of which any lets one through."""
P = Permission
ENROLL = (P.enrollments_create, P.customers_enroll)
"""Staff creators any enrollment; a partner (reseller user) its own customers' (404 for any other)."""
READ = (P.enrollments_read, P.customers_enroll)

MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # for the scraper inside the deployment: no public ingress (docs/operations.md)
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("POST", "/api/enrollments"): ENROLL,
    ("GET", "/api/enrollments"): READ,
    ("GET", "/api/enrollments/{enrollment_id}"): READ,
    ("PATCH", "/api/enrollments/{enrollment_id}"): ENROLL,
    ("POST", "/api/enrollments/{enrollment_id}/resend"): ENROLL,
    ("DELETE", "/api/enrollments/{enrollment_id}"): ENROLL,
    ("POST", "/api/enrollments/{enrollment_id}/review/start"): P.enrollments_review,
    ("POST", "/api/enrollments/{enrollment_id}/review/approve"): P.enrollments_review,
    ("POST", "/api/enrollments/{enrollment_id}/review/reject"): P.enrollments_review,
    ("GET", "/api/accounts"): SIGNED_IN,
    ("GET", "/api/accounts/{account_id}"): SIGNED_IN,
    ("GET", "/api/accounts/{account_id}/summary"): SIGNED_IN,
    ("POST", "/api/accounts/{account_id}/users-purchased"): P.accounts_change,
    ("PATCH", "/api/accounts/{account_id}"): P.accounts_change,
    ("POST", "/api/accounts/{account_id}/usage"): P.accounts_usage,
    ("POST", "/api/accounts/{account_id}/suspend"): P.accounts_suspend,
    ("POST", "/api/accounts/{account_id}/reactivate"): P.accounts_suspend,
    ("DELETE", "/api/accounts/{account_id}"): P.accounts_suspend,
    ("GET", "/api/accounts/{account_id}/rollup"): SIGNED_IN,
    ("GET", "/api/accounts/{account_id}/customers.csv"): SIGNED_IN,
    ("POST", "/api/tokens"): SIGNED_IN,
    ("GET", "/api/tokens"): SIGNED_IN,
    ("DELETE", "/api/tokens/{token_id}"): SIGNED_IN,
    ("GET", "/api/accounts/{account_id}/administrators"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators/{user_id}/resend"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators/{user_id}/disable"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators/{user_id}/enable"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators/{user_id}/unlock"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/administrators/{user_id}/reset-second-factor"): P.administrators_manage,
    ("POST", "/api/accounts/{account_id}/credential-batches"): P.credentials_upload,
    ("GET", "/api/accounts/{account_id}/credential-batches/{batch_id}"): P.credentials_read,
    ("GET", "/api/accounts/{account_id}/credential-batches/{batch_id}/report.csv"): P.credentials_read,
    ("GET", "/api/accounts/{account_id}/credentials"): P.credentials_read,
    ("POST", "/api/accounts/{account_id}/credentials/assign"): P.credentials_manage,
    ("POST", "/api/credentials/check"): P.credentials_read,
    ("GET", "/api/audit.csv"): P.audit_export,
    ("GET", "/api/mail-health"): P.mail_health,
    ("POST", "/api/mail-events"): P.mail_events,
    ("POST", "/api/mail-events/ses"): PROVIDER,
    ("POST", "/api/mail-events/postmark"): PROVIDER,
    ("POST", "/api/mail-events/mailgun"): PROVIDER,
    ("POST", "/api/mail-events/sendgrid"): PROVIDER,
    ("GET", "/api/events"): P.events_read,
    ("GET", "/api/webhook-endpoints"): P.webhooks_manage,
    ("POST", "/api/webhook-endpoints"): P.webhooks_manage,
    ("GET", "/api/webhook-endpoints/{endpoint_id}"): P.webhooks_manage,
    ("PATCH", "/api/webhook-endpoints/{endpoint_id}"): P.webhooks_manage,
    ("DELETE", "/api/webhook-endpoints/{endpoint_id}"): P.webhooks_manage,
    ("POST", "/api/webhook-endpoints/{endpoint_id}/rotate-secret"): P.webhooks_manage,
    ("GET", "/api/webhook-endpoints/{endpoint_id}/deliveries"): P.webhooks_manage,
    ("GET", "/api/webhook-deliveries/{delivery_id}"): P.webhooks_manage,
    ("POST", "/api/webhook-deliveries/{delivery_id}/replay"): P.webhooks_manage,
    ("POST", "/codec/encode"): P.enrollments_read,
    ("POST", "/codec/decode"): P.enrollments_read,
    ("GET", "/enroll/thanks"): PUBLIC,
    ("GET", "/enroll/{token}"): PUBLIC,
    ("POST", "/enroll/{token}"): PUBLIC,
    ("GET", "/dev/mailbox"): PUBLIC,
    ("GET", "/dev/mailbox/{message_id}"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/signin"): PUBLIC,
    ("POST", "/signin"): PUBLIC,
    ("GET", "/signin/second-factor"): SIGNED_IN,  # signed in with the password, the code still to come
    ("POST", "/signin/second-factor"): SIGNED_IN,
    ("GET", "/signin/forgot"): PUBLIC,
    ("POST", "/signin/forgot"): PUBLIC,
    ("GET", "/reset/{token}"): PUBLIC,  # the link's token is the credential
    ("POST", "/reset/{token}"): PUBLIC,
    ("GET", "/activate/{token}"): PUBLIC,
    ("POST", "/activate/{token}"): PUBLIC,
    ("POST", "/signout"): SIGNED_IN,
    ("GET", "/me"): SIGNED_IN,
    ("GET", "/me/second-factor"): SIGNED_IN,
    ("POST", "/me/second-factor"): SIGNED_IN,
    ("POST", "/me/second-factor/recovery-codes"): SIGNED_IN,
    ("POST", "/me/second-factor/reset"): SIGNED_IN,
    ("GET", "/me/tokens"): SIGNED_IN,
    ("POST", "/me/tokens"): SIGNED_IN,
    ("GET", "/me/tokens/{token_id}/revoke"): SIGNED_IN,
    ("POST", "/me/tokens/{token_id}/revoke"): SIGNED_IN,
    ("GET", "/accounts/new"): ENROLL,
    ("POST", "/accounts/new"): ENROLL,
    ("GET", "/accounts"): P.enrollments_read,
    ("GET", "/accounts/{account_id}"): SIGNED_IN,
    ("GET", "/accounts/{account_id}/customers"): SIGNED_IN,
    ("GET", "/accounts/{account_id}/customers.csv"): SIGNED_IN,
    ("GET", "/accounts/{account_id}/users-purchased"): P.accounts_change,
    ("POST", "/accounts/{account_id}/users-purchased"): P.accounts_change,
    ("GET", "/accounts/{account_id}/display"): P.accounts_change,
    ("POST", "/accounts/{account_id}/display"): P.accounts_change,
    ("GET", "/accounts/{account_id}/end-date"): P.accounts_change,
    ("POST", "/accounts/{account_id}/end-date"): P.accounts_change,
    ("GET", "/accounts/{account_id}/suspend"): P.accounts_suspend,
    ("POST", "/accounts/{account_id}/suspend"): P.accounts_suspend,
    ("GET", "/accounts/{account_id}/reactivate"): P.accounts_suspend,
    ("POST", "/accounts/{account_id}/reactivate"): P.accounts_suspend,
    ("GET", "/accounts/{account_id}/delete"): P.accounts_suspend,
    ("POST", "/accounts/{account_id}/delete"): P.accounts_suspend,
    ("GET", "/account/administrators"): P.administrators_manage,
    ("GET", "/accounts/{account_id}/administrators"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators/{user_id}/resend"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators/{user_id}/disable"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators/{user_id}/enable"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators/{user_id}/unlock"): P.administrators_manage,
    ("POST", "/accounts/{account_id}/administrators/{user_id}/reset-second-factor"): P.administrators_manage,
    ("GET", "/accounts/{account_id}/credentials"): P.credentials_read,
    ("POST", "/accounts/{account_id}/credential-batches"): P.credentials_upload,
    ("GET", "/accounts/{account_id}/credential-batches/{batch_id}"): P.credentials_read,
    ("GET", "/accounts/{account_id}/credential-batches/{batch_id}/report.csv"): P.credentials_read,
    ("POST", "/accounts/{account_id}/credentials/assign"): P.credentials_manage,
    ("GET", "/credentials/check"): P.credentials_read,
    ("POST", "/credentials/check"): P.credentials_read,
    ("GET", "/enrollments"): READ,
    ("GET", "/enrollments/{enrollment_id}"): READ,
    ("GET", "/enrollments/{enrollment_id}/next-steps"): ENROLL,
    ("GET", "/enrollments/{enrollment_id}/edit"): ENROLL,
    ("POST", "/enrollments/{enrollment_id}/edit"): ENROLL,
    ("GET", "/enrollments/{enrollment_id}/delete"): ENROLL,
    ("POST", "/enrollments/{enrollment_id}/delete"): ENROLL,
    ("GET", "/enrollments/{enrollment_id}/resend"): ENROLL,
    ("POST", "/enrollments/{enrollment_id}/resend"): ENROLL,
    ("GET", "/review"): P.enrollments_review,
    ("GET", "/review/{enrollment_id}"): P.enrollments_review,
    ("POST", "/review/{enrollment_id}/start"): P.enrollments_review,
    ("POST", "/review/{enrollment_id}/approve"): P.enrollments_review,
    ("POST", "/review/{enrollment_id}/reject"): P.enrollments_review,
    ("GET", "/admin/users"): P.users_manage,
    ("POST", "/admin/users"): P.users_manage,
    ("GET", "/admin/users/{user_id}"): P.users_manage,
    ("POST", "/admin/users/{user_id}/disable"): P.users_manage,
    ("POST", "/admin/users/{user_id}/enable"): P.users_manage,
    ("POST", "/admin/users/{user_id}/second-factor/reset"): P.users_manage,
    ("POST", "/admin/users/{user_id}/tokens/{token_id}/revoke"): P.users_manage,
    ("GET", "/admin/audit.csv"): P.audit_export,
    ("GET", "/webhooks"): P.webhooks_manage,
    ("POST", "/webhooks"): P.webhooks_manage,
    ("GET", "/webhooks/{endpoint_id}"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}/disable"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}/enable"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}/rotate-secret"): P.webhooks_manage,
    ("GET", "/webhooks/{endpoint_id}/delete"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}/delete"): P.webhooks_manage,
    ("POST", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"): P.webhooks_manage,
}
ROLES = list(Role)
IDS = {
    "enrollment_id": "no-such-enrollment",
    "account_id": "no-such-account",
    "user_id": "no-such-user",
    "token_id": "no-such-token",
    "token": "no-such-link",
    "message_id": "no-such-message",
    "batch_id": "no-such-batch",
    "endpoint_id": "no-such-endpoint",
    "delivery_id": "no-such-delivery",
}
SIGN_IN_REDIRECT = re.compile(r"^/signin(\?next=|$)")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def full_settings(**changes: Any) -> Settings:
    """Settings under which the app serves every route it has (the dev mailbox and the codec too)."""
    return Settings(_env_file=None, secret_key="matrix", dev_mailbox=True, payload_key=new_key_text("k1"), **changes)


def routes_of(app: FastAPI) -> dict[tuple[str, str], bool]:
    """(method, path) of every route → whether it is a portal page (HEAD, which answers like GET, left out)."""
    found: dict[tuple[str, str], bool] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        for method in getattr(route, "methods", None) or {"GET"}:
            if method != "HEAD" and context.path is not None:
                found[(method, re.sub(r":\w+}", "}", context.path))] = isinstance(route, PortalRoute)
    return found


def permissions_of(rule: Rule) -> tuple[Permission, ...]:
    return rule if isinstance(rule, tuple) else (Permission(rule),)


def expected(rule: Rule, role: Role | None) -> str:
    if rule == PUBLIC:
        return "allowed"
    if role is None or rule == PROVIDER:
        return "sign in"
    if rule == SIGNED_IN or any(role in PERMISSIONS[Permission(each)].roles for each in permissions_of(rule)):
        return "allowed"
    return "refused"


def outcome(response: httpx.Response, portal: bool) -> str:
    if portal:
        if response.is_redirect and SIGN_IN_REDIRECT.match(response.headers["location"]):
            return "sign in"
        if response.status_code == 403 and "may not" in response.text:
            return "refused"
        # A reseller or customer user is shown their own page, or the page that says theirs come later.
        if "Nothing here yet" in response.text:
            return "refused"
        if response.is_redirect and response.headers["location"].startswith("/accounts/"):
            return "refused"
    elif response.status_code in (401, 403):
        return "sign in" if response.status_code == 401 else "refused"
    return "allowed"


def request_for(method: str, path: str, portal: bool, who: Person | None, settings: Settings) -> dict[str, Any]:
    url = "/static/site.css" if path == "/static" else path.format(**IDS)
    kwargs: dict[str, Any] = {"method": method, "url": url, "headers": {}}
    if who is not None:
        kwargs["headers"] = who.session if portal or path.startswith("/enroll") else who.auth
    if path == "/signin" and method == "POST":
        cookie, csrf = (who.cookie, who.csrf) if who else portal_session(settings, None)
        email = who.email if who else "admin.user@provider.example"
        kwargs["headers"] = {"Cookie": cookie}
        kwargs["data"] = {"csrf_token": csrf, "email": email, "password": PASSWORD}
    elif method in ("POST", "PATCH") and (portal or path.startswith("/enroll")):
        kwargs["data"] = {"csrf_token": who.csrf if who else "none"}
    elif method in ("POST", "PATCH"):
        kwargs["json"] = {"payloads": []} if path.startswith("/codec") else {}
    elif method == "DELETE":
        kwargs["params"] = {"audit_note": "access matrix"}
    return kwargs


def test_every_route_is_in_the_matrix() -> None:
    served = set(routes_of(create_app(full_settings())))
    unlisted = sorted(served - set(MATRIX))
    gone = sorted(set(MATRIX) - served)
    assert not unlisted, f"routes with no rule in the access matrix (add them to MATRIX and docs/access.md): {unlisted}"
    assert not gone, f"the access matrix lists routes the app no longer has: {gone}"


def test_the_docs_show_the_matrix_and_the_permission_table() -> None:
    text = DOCS.read_text()
    missing = [row for row in doc_rows() if row not in text]
    assert not missing, "docs/access.md is out of date; its rows are:\n" + "\n".join(missing)


async def test_every_role_gets_what_the_matrix_says(
    tmp_path: Path, temporal: Any, mail_sink: MailSink, task_queue: str
) -> None:
    extra = {"dev_mailbox": True, "payload_key": new_key_text("k1")}
    async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue, **extra) as stack:
        await seed_accounts(stack.settings)  # the member users' own accounts, Active (a partner may create)
        people: dict[Role | None, Person | None] = {None: None}
        for each in ROLES:
            people[each] = await person(stack.settings, each)
        served = routes_of(create_app(stack.settings))
        wrong = []
        for (method, path), rule in MATRIX.items():
            if (method, path) not in served:
                continue
            portal = served[(method, path)]
            for role, who in people.items():
                response = await send(stack, request_for(method, path, portal, who, stack.settings))
                got = outcome(response, portal)
                if got != expected(rule, role) or response.status_code >= 500:
                    wrong.append(f"{method} {path} as {role or 'anonymous'}: {got} ({response.status_code})")
        assert not wrong, "\n".join(wrong)


async def send(stack: Stack, kwargs: dict[str, Any]) -> httpx.Response:
    stack.api.cookies.clear()  # each request carries only the credentials it is given
    return await stack.api.request(follow_redirects=False, **kwargs)


def cell(rule: Rule, role: Role | None, portal: bool) -> str:
    return {
        "allowed": "✓",
        "sign in": "→ sign in" if portal else "401",
        "refused": "refused" if portal else "403",
    }[expected(rule, role)]


def rule_name(rule: Rule) -> str:
    return " or ".join(f"`{each.value}`" for each in permissions_of(rule))


def doc_rows() -> list[str]:
    """The permission table, then one row per route: method, path, rule, and each role's answer."""
    rows = [
        f"| `{p.value}` | {g.what} | {', '.join(r.value for r in ROLES if r in g.roles)} |"
        for p, g in PERMISSIONS.items()
    ]
    portal_of = routes_of(create_app(full_settings()))
    for (method, path), rule in MATRIX.items():
        portal = portal_of.get((method, path), False)
        cells = " | ".join(cell(rule, role, portal) for role in [None, *ROLES])
        rule_text = rule if isinstance(rule, str) and rule in (PUBLIC, SIGNED_IN, PROVIDER) else rule_name(rule)
        kind = "portal" if portal else "API" if path.startswith(("/api/", "/codec/")) else "other"
        rows.append(f"| {method} | `{path}` | {kind} | {rule_text} | {cells} |")
    return rows


if __name__ == "__main__":
    print("\n".join(doc_rows()))
