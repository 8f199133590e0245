"""Temporal out of reach: every call that needs it answers 503 within 10 s, what the store holds is still served,
and once the server is back the enrollment carries on: the contact's form goes in, one invitation, no failed run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from starter.app import create_app
from starter.dev.mailsink import MailSink
from tests.faults.temporal_harness import FORM, OutageStack, outage_stack, until
from tests.integration.conftest import VALID
from tests.support import free_port

WITHIN = 10.0
"""Seconds within which every call must answer while Temporal is down."""
INVITATION = "Complete the member account enrollment"
RECEIVED = "We received the enrollment form"

Call = Callable[[], Awaitable[httpx.Response]]


async def timed(call: Call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await asyncio.wait_for(call(), timeout=WITHIN * 3)
    return response, time.monotonic() - started


async def answers(calls: dict[str, Call]) -> dict[str, tuple[httpx.Response, float]]:
    """Every call at once (as from many users), each timed on its own."""
    results = await asyncio.gather(*(timed(call) for call in calls.values()))
    return dict(zip(calls, results, strict=True))


def assert_unavailable(results: dict[str, tuple[httpx.Response, float]], *, page: bool = False) -> None:
    for what, (response, seconds) in results.items():
        assert response.status_code == 503, f"{what}: {response.status_code} {response.text[:300]}"
        assert seconds < WITHIN, f"{what} answered after {seconds:.1f} s"
        if page:
            assert response.headers["content-type"].startswith("text/html"), what
            assert "unreachable" in response.text, what
        else:
            assert "unreachable" in response.json()["detail"], what
            assert response.headers["retry-after"], what


async def approved_account(stack: OutageStack) -> str:
    enrollment_id = await stack.enroll("Approved Holdings Ltd", "ann@approved.example")
    await stack.submit("ann@approved.example")
    await stack.review(enrollment_id, "start")
    await stack.review(enrollment_id, "approve")

    async def account_id() -> str | None:
        found = (await stack.detail(enrollment_id))["account_id"]
        if found is None:
            return None
        shown = await stack.api.get(f"/api/accounts/{found}", headers=stack.auth)
        return str(found) if shown.status_code == 200 else None

    await until(account_id)
    return str(await account_id())


async def test_temporal_down_answers_503_in_time_and_the_enrollment_carries_on_once_it_is_back(
    tmp_path: Path, mail_sink: MailSink, task_queue: str
) -> None:
    async with outage_stack(tmp_path, mail_sink, task_queue) as stack:
        api, auth = stack.api, stack.auth
        account = await approved_account(stack)
        in_review = await stack.enroll("In Review Industries", "ivy@inreview.example")
        await stack.submit("ivy@inreview.example")
        await stack.review(in_review, "start")
        pending = await stack.enroll("Pending Partners Ltd", "pip@pending.example")
        await stack.submit("pip@pending.example")
        new = await stack.enroll("Acme Widgets Ltd", "pat@acme.example")
        link = stack.form_link("pat@acme.example")

        await stack.dev.stop()

        note = {"audit_note": "during the outage"}
        assert_unavailable(
            await answers(
                {
                    "create": lambda: api.post(
                        "/api/enrollments", json={**VALID, "organization_name": "Later Ltd"}, headers=auth
                    ),
                    "edit": lambda: api.patch(
                        f"/api/enrollments/{new}", json={"users_purchased": 1200, **note}, headers=auth
                    ),
                    "resend": lambda: api.post(f"/api/enrollments/{new}/resend", json=note, headers=auth),
                    "delete": lambda: api.delete(f"/api/enrollments/{new}", params=note, headers=auth),
                    "start review": lambda: api.post(
                        f"/api/enrollments/{pending}/review/start", json=note, headers=auth
                    ),
                    "approve": lambda: api.post(
                        f"/api/enrollments/{in_review}/review/approve", json=note, headers=auth
                    ),
                    "reject": lambda: api.post(
                        f"/api/enrollments/{in_review}/review/reject", json={**note, "reason": "no"}, headers=auth
                    ),
                    "account edit": lambda: api.patch(
                        f"/api/accounts/{account}", json={"service_end_date": "2031-01-31", **note}, headers=auth
                    ),
                    "suspend": lambda: api.post(f"/api/accounts/{account}/suspend", json=note, headers=auth),
                    "add users": lambda: api.post(
                        f"/api/accounts/{account}/users-purchased", json={"add": 100, **note}, headers=auth
                    ),
                    "usage": lambda: api.post(
                        f"/api/accounts/{account}/usage", json={"users_existing": 7}, headers=auth
                    ),
                }
            )
        )
        create_form = {k: str(v) for k, v in VALID.items()}
        create_form.update(display_users_purchased="yes", organization_name="Portal Later Ltd")
        assert_unavailable(
            await answers(
                {
                    "portal create": lambda: stack.portal_post("/accounts/new", create_form),
                    "portal resend": lambda: stack.portal_post(f"/enrollments/{new}/resend", note),
                    "portal start review": lambda: stack.portal_post(f"/review/{pending}/start", note),
                    "portal suspend": lambda: stack.portal_post(f"/accounts/{account}/suspend", note),
                }
            ),
            page=True,
        )

        session = {"Cookie": stack.cookie}
        reads = await answers(
            {
                "list": lambda: api.get("/api/enrollments", headers=auth),
                "enrollment": lambda: api.get(f"/api/enrollments/{new}", headers=auth),
                "accounts": lambda: api.get("/api/accounts", headers=auth),
                "account": lambda: api.get(f"/api/accounts/{account}", headers=auth),
                "summary": lambda: api.get(f"/api/accounts/{account}/summary", headers=auth),
                "portal enrollments": lambda: api.get("/enrollments", headers=session),
                "portal enrollment": lambda: api.get(f"/enrollments/{new}?tab=timeline", headers=session),
                "portal accounts": lambda: api.get("/accounts", headers=session),
                "contact's form": lambda: api.get(link),
            }
        )
        for what, (response, seconds) in reads.items():
            assert response.status_code == 200, f"{what}: {response.status_code} {response.text[:300]}"
            assert seconds < WITHIN, f"{what} answered after {seconds:.1f} s"
        assert len(reads["list"][0].json()["items"]) == 4
        assert "Acme Widgets Ltd" in reads["contact's form"][0].text

        submitted, seconds = await timed(lambda: api.post(link, data=FORM))
        assert submitted.status_code == 503 and seconds < WITHIN, (submitted.status_code, seconds)
        assert "try again in a few minutes" in submitted.text and "no longer valid" not in submitted.text

        # An API started while Temporal is down: it connects on first use, so it serves the store and the form.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(stack.settings)), base_url="http://testserver"
        ) as fresh:
            assert (await fresh.get("/api/enrollments", headers=auth)).status_code == 200
            assert (await fresh.get(link)).status_code == 200
            assert_unavailable(
                await answers(
                    {
                        "create": lambda: fresh.post(
                            "/api/enrollments", json={**VALID, "organization_name": "Brand New Ltd"}, headers=auth
                        )
                    }
                )
            )
            assert (await fresh.post(link, data=FORM)).status_code == 503

        await stack.dev.start()

        again = await api.post(link, data=FORM)
        assert again.status_code == 303 and again.headers["location"] == "/enroll/thanks", again.text
        await until(lambda: any(RECEIVED in s for s in stack.subjects_to("pat@acme.example")))
        assert (await stack.detail(new))["status"] == "Pending Review"
        assert (await stack.detail(pending))["status"] == "Pending Review"  # nothing asked during the outage happened
        assert (await stack.detail(in_review))["status"] == "In Review"
        assert (await api.get(f"/api/accounts/{account}", headers=auth)).json()["status"] == "Active"
        await asyncio.sleep(2)  # time for a second invitation, were one coming
        assert sum(INVITATION in s for s in stack.subjects_to("pat@acme.example")) == 1
        client = await stack.client()
        running = "ExecutionStatus = 'Running' AND WorkflowType {} 'AdministratorWorkflow'"
        assert (await client.count_workflows(running.format("!="))).count == 4  # 3 enrollments, 1 account
        assert (await client.count_workflows(running.format("="))).count == 2  # the account's two administrators
        assert (
            await client.count_workflows("ExecutionStatus != 'Running' AND ExecutionStatus != 'Completed'")
        ).count == 0


def test_the_cli_lists_from_the_store_and_refuses_changes_plainly_while_temporal_is_down(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")}
    env.update(
        ENROLL_DATA_DIR=str(tmp_path / "data"),
        ENROLL_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens there
        ENROLL_SECRET_KEY="test-secret-key-not-for-production",
    )

    def enroll(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "starter.cli", *args]
        return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    listed = enroll("list")
    assert listed.returncode == 0, listed.stderr
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "starter.cli",
            "users",
            "add",
            "csm@provider.example",
            "--role",
            "csm",
            "--password-stdin",
        ],
        input="a long enough password\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    created = enroll(
        "create",
        "--as",
        "csm@provider.example",
        "--organization",
        "Acme Widgets Ltd",
        "--type",
        "customer",
        "--contact",
        "pat@acme.example",
        "--end-date",
        "2030-06-30",
    )
    assert created.returncode == 2, created.stderr
    assert "workflow service is unreachable" in created.stderr and "Traceback" not in created.stderr
