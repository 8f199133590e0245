"""No secret reaches a log line: a whole create → submit → approve flow with every logger at DEBUG. And the
JSON lines of that flow, as production logs them (`ENROLL_LOG_FORMAT=json`, INFO, tracing on), carry the run's
ids and no personal data: no address, no name, nothing the contact typed into the form.

Covers what the worker and the API log in-process (the store, Temporal's SDK, the activities, the portal);
tests/security/logs_test.py covers the web server's access log of the running `enroll api`.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyotp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from observability import tracing
from observability.logs import JsonFormatter, Redact
from starter.dev.mailsink import MailSink
from tests.integration.conftest import Stack, eventually
from tests.integration.lifecycle_test import FORM, created
from tests.security.conftest import PASSWORD, person, portal_session, sqlite_stack
from tests.webhooks.receiver import Receiver
from workflows.codec import new_key_text
from workflows.names import webhook_endpoint_workflow_id

# The test's own parts, playing the outside world: its SMTP server receives the emails (links and all, as any
# mail server does; `enroll up`'s dev sink logs at WARNING), and its HTTP client is the contact's browser.
NOT_OURS = ("mail.log", "httpx", "httpcore")
NEW_PASSWORD = "the new user's own secret words"
WRONG_PASSWORD = "a guess that is not right at all"
ADMIN_PASSWORD = "tangerine ledger 83 quietly"


def assert_none_logged(
    secrets: dict[str, str], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """None of `secrets` (name → value) in a log record of ours, a traceback, or the process's own output."""
    captured = capfd.readouterr()
    ours = [r for r in caplog.records if not r.name.startswith(NOT_OURS)]
    logged = "\n".join([*(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in ours), captured.out, captured.err])
    assert len(caplog.records) > 20, "the loggers were not captured"
    leaked = [name for name, secret in secrets.items() if secret and secret in logged]
    assert not leaked, f"logged: {leaked}"


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes at INFO as `ENROLL_LOG_FORMAT=json` configures it (observability.logs)."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redact())
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    activity.logger.activity_info_on_message = False
    tracing.use(TracerProvider())
    try:
        yield lines
    finally:
        tracing.use(None)
        activity.logger.activity_info_on_message = True
        logging.getLogger().removeHandler(handler)


async def test_no_token_password_or_key_is_logged(
    tmp_path: Path,
    temporal: WorkflowEnvironment,
    mail_sink: MailSink,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    payload_key = new_key_text("k1")
    caplog.set_level(logging.DEBUG)
    with json_log() as json_lines:
        async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue, payload_key=payload_key) as stack:
            admin = await person(stack.settings, Role.admin)
            reviewer = await person(stack.settings, Role.reviewer)
            form = {
                "csrf_token": admin.csrf,
                "email": "new@provider.example",
                "role": "sales",
                "password": NEW_PASSWORD,
            }
            assert (await stack.api.post("/admin/users", data=form, headers=admin.session)).status_code == 303
            for password, status in [(WRONG_PASSWORD, 401), (NEW_PASSWORD, 303)]:
                stack.api.cookies.clear()
                cookie, csrf = portal_session(stack.settings, None)
                sign_in = {"csrf_token": csrf, "email": "new@provider.example", "password": password}
                assert (await stack.api.post("/signin", data=sign_in, headers={"Cookie": cookie})).status_code == status

            enrollment_id = await created(stack)
            link = stack.form_link("pat@acme.example")
            assert (await stack.api.get(link)).status_code == 200
            assert (await stack.api.post(link, data=FORM)).status_code == 303
            for step in ("start", "approve"):
                url = f"/api/enrollments/{enrollment_id}/review/{step}"
                assert (await stack.api.post(url, json={"audit_note": step}, headers=reviewer.auth)).status_code == 200
            secret_key = stack.settings.secret_key.get_secret_value() if stack.settings.secret_key else ""

    token = link.rsplit("/", 1)[1]
    key_bytes = payload_key.split(":", 1)[1]
    secrets = {
        "form token": token,
        "password": PASSWORD,
        "new user's password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "API token": stack.token,
        "reviewer's API token": reviewer.token,
        "ENROLL_SECRET_KEY": secret_key,
        "ENROLL_PAYLOAD_KEY": key_bytes,
        "ENROLL_PAYLOAD_KEY (raw)": base64.b64decode(key_bytes).hex(),
    }
    assert_none_logged(secrets, caplog, capfd)

    # The JSON lines: one object each, the ids where the SDK or a trace knows them, and no personal data.
    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    sends = [record for record in records if record["logger"] == "temporalio.activity" and " sent" in record["message"]]
    assert sends, "no activity logged a send"
    for record in sends:
        assert record["workflow_id"] == f"enrollment-{record['enrollment_id']}" or record["workflow_id"].startswith(
            "account-"
        ), record
        assert record["run_id"] and record["activity"] in ("send_invitation", "send_email"), record
        assert len(record["trace_id"]) == 32, record
        assert "({" not in record["message"], "the ids are fields, not repeated in the message"
    assert enrollment_id in {record.get("enrollment_id") for record in records}
    personal = {
        "contact's address": "pat@acme.example",
        "CSM's address": "csm@provider.example",
        "admin's address": admin.email,
        "reviewer's address": reviewer.email,
        "new user's address": "new@provider.example",
        "organization": "Acme Widgets",
        **{f"form {field}": str(value) for field, value in FORM.items() if field != "accept_terms"},
    }
    written = json_lines.getvalue()
    exposed = [name for name, value in personal.items() if value in written]
    assert not exposed, f"the JSON log holds personal data: {exposed}"


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def _mailed_link(stack: Stack, address: str, path: str) -> str:
    """The token of the newest `/<path>/<token>` link emailed to `address` (once it has arrived)."""
    pattern = re.compile(rf"http://testserver/{path}/([A-Za-z0-9_-]+)")

    async def arrived() -> bool:
        return any(pattern.search(m.text or "") for m in stack.mail_to(address))

    await eventually(arrived)
    for message in stack.mail_to(address):
        found = pattern.search(message.text or "")
        if found:
            return found.group(1)
    raise AssertionError(f"no /{path}/ link was emailed to {address}")


async def test_no_activation_link_second_factor_key_recovery_code_or_reset_link_is_logged(
    tmp_path: Path,
    temporal: WorkflowEnvironment,
    mail_sink: MailSink,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The member's path, every logger at DEBUG: approval invites the contact, who activates with a password of
    their own, sets up the second factor (its key and recovery codes shown once), and later asks for a reset."""
    caplog.set_level(logging.DEBUG)
    async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue) as stack:
        reviewer = await person(stack.settings, Role.reviewer)
        enrollment_id = await created(stack)
        assert (await stack.api.post(stack.form_link("pat@acme.example"), data=FORM)).status_code == 303
        for step in ("start", "approve"):
            url = f"/api/enrollments/{enrollment_id}/review/{step}"
            assert (await stack.api.post(url, json={"audit_note": step}, headers=reviewer.auth)).status_code == 200

        activation = await _mailed_link(stack, "pat@acme.example", "activate")
        stack.api.cookies.clear()
        shown = await stack.api.get(f"/activate/{activation}")
        form = {"csrf_token": _csrf(shown.text), "password": ADMIN_PASSWORD, "password_confirm": ADMIN_PASSWORD}
        activated = await stack.api.post(f"/activate/{activation}", data=form)
        assert activated.status_code == 303, activated.text
        setup = await stack.api.get(activated.headers["location"])
        found = re.search(r'<code id="setup-key">([^<]+)</code>', setup.text)
        assert found, setup.text
        key = found.group(1).replace(" ", "")
        turned_on = await stack.api.post(
            "/me/second-factor", data={"csrf_token": _csrf(setup.text), "code": pyotp.TOTP(key).now()}
        )
        codes = re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", turned_on.text)
        assert len(codes) == 10, turned_on.text

        stack.api.cookies.clear()
        forgot = await stack.api.get("/signin/forgot")
        asked = await stack.api.post(
            "/signin/forgot", data={"csrf_token": _csrf(forgot.text), "email": "pat@acme.example"}
        )
        assert asked.status_code == 200
        reset = await _mailed_link(stack, "pat@acme.example", "reset")
        assert (await stack.api.get(f"/reset/{reset}")).status_code == 200

    secrets = {
        "activation token": activation,
        "administrator's password": ADMIN_PASSWORD,
        "second factor key": key,
        "second factor key (as shown)": found.group(1),
        "reset token": reset,
        **{f"recovery code {n}": code for n, code in enumerate(codes)},
    }
    assert_none_logged(secrets, caplog, capfd)


async def test_no_webhook_secret_or_receiver_token_is_logged_or_in_a_history(
    tmp_path: Path,
    temporal: WorkflowEnvironment,
    mail_sink: MailSink,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """An endpoint registered, delivered to, failing for a moment and its secret rotated: neither secret, nor the
    token its receiver keeps in the URL, is in a log line of ours or in the endpoint's run's history."""
    caplog.set_level(logging.DEBUG)
    receiver = await Receiver().start()
    receiver_token = "receiver-query-token-8b1f"
    async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue, webhooks_allow_private=True) as stack:
        admin = await person(stack.settings, Role.admin)
        made = await stack.api.post(
            "/api/webhook-endpoints", json={"url": f"{receiver.url}?token={receiver_token}"}, headers=admin.auth
        )
        assert made.status_code == 201, made.text
        endpoint_id, first_secret = made.json()["id"], made.json()["secret"]
        receiver.secrets.append(first_secret)
        receiver.answer = lambda got: 500 if len(receiver.received) == 1 else 200
        await created(stack)
        await eventually(lambda: len(receiver.verified()) >= 3, timeout=30)  # created (500, then 200), invited
        rotated = await stack.api.post(f"/api/webhook-endpoints/{endpoint_id}/rotate-secret", headers=admin.auth)
        second_secret = rotated.json()["secret"]
        handle = stack.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint_id))
        history = b"".join(event.SerializeToString() for event in (await handle.fetch_history()).events)
    await receiver.stop()
    secrets = {
        "webhook secret": first_secret.removeprefix("whsec_"),
        "rotated webhook secret": second_secret.removeprefix("whsec_"),
    }
    assert_none_logged(secrets, caplog, capfd)
    # The URL is the receiver's data, stored as given (the store's driver echoes it at DEBUG): no line of ours at
    # INFO or above names it, and production turns httpx's own request log (which would) down to warnings.
    ours = [r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith(NOT_OURS)]
    assert ours and not any(receiver_token in r.getMessage() for r in ours), "the receiver's URL token was logged"
    for name, secret in {**secrets, "receiver's URL token": receiver_token}.items():
        assert secret.encode() not in history, f"{name} in the endpoint's history"
    assert endpoint_id.encode() in history, "the history was read"
