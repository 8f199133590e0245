"""The `enroll` commands as a user runs them (subprocesses), against the real stack."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.integration.conftest import Stack, eventually
from tests.integration.worker_restart_test import worker_env


async def enroll(stack: Stack, *args: str, stdin: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        *args,
        env={**worker_env(stack.settings), "COLUMNS": "200", "NO_COLOR": "1"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=os.getcwd(),
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_users_and_tokens(stack: Stack) -> None:
    code, out, _ = await enroll(
        stack,
        "users",
        "add",
        "ops@provider.example",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert code == 0 and "added ops@provider.example (admin)" in out
    code, _, err = await enroll(
        stack, "users", "add", "c@x.example", "--role", "customer", "--password-stdin", stdin="a long enough password\n"
    )
    assert code == 2 and "needs --account" in err
    code, out, _ = await enroll(stack, "tokens", "create", "ops@provider.example", "--expires-in", "1d")
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("enr_")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await stack.api.get("/api/enrollments", headers=auth)).status_code == 200
    code, out, _ = await enroll(stack, "tokens", "list", "ops@provider.example")
    assert code == 0 and token not in out
    token_id = next(line.split()[1] for line in out.splitlines() if "ops@provider.example" in line)
    code, _, _ = await enroll(stack, "tokens", "revoke", token_id)
    assert code == 0
    assert (await stack.api.get("/api/enrollments", headers=auth)).status_code == 401
    code, _, _ = await enroll(stack, "users", "disable", "csm@provider.example")
    assert code == 0
    assert (await stack.api.get("/api/enrollments", headers=stack.auth)).status_code == 401
    code, out, _ = await enroll(stack, "users", "list")
    assert "csm@provider.example" in out and "yes" in out


async def test_create_list_show(stack: Stack) -> None:
    code, out, err = await enroll(
        stack,
        "create",
        "--as",
        "csm@provider.example",
        "--organization",
        "Initech LLC",
        "--type",
        "customer",
        "--contact",
        "bill@initech.example",
        "--end-date",
        "2031-01-31",
        "--display-users-purchased",
        "--users-purchased",
        "250",
    )
    assert code == 0, err
    assert "Initech LLC" in out and "New" in out
    await eventually(lambda: len(stack.mail_to("bill@initech.example")) == 1)
    code, out, _ = await enroll(stack, "list", "--status", "New")
    assert code == 0 and "Initech LLC" in out
    page = (await stack.api.get("/api/enrollments", headers=stack.auth)).json()
    enrollment_id = page["items"][0]["id"]
    code, out, _ = await enroll(stack, "show", enrollment_id)
    assert code == 0 and "created" in out and "invited" in out
    code, _, err = await enroll(
        stack,
        "create",
        "--as",
        "csm@provider.example",
        "--organization",
        "X",
        "--type",
        "customer",
        "--contact",
        "not-an-address",
        "--end-date",
        "2020-01-01",
    )
    assert code == 2
    for field in ("organization_name", "corporate_contact_email", "service_end_date"):
        assert field in err
    assert (await enroll(stack, "show", "nope"))[0] == 1


async def test_import_is_safe_to_rerun(stack: Stack, tmp_path: Path) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text(
        "organization_name,member_type,service_end_date,display_users_purchased,users_purchased,corporate_contact_email\n"
        "Alpha Corp,customer,2031-01-01,yes,100,a@alpha.example\n"
        "Beta Resale Ltd,reseller,2031-01-01,,,b@beta.example\n"
        "G,customer,2031-01-01,no,,g@gamma.example\n"
    )
    code, out, _ = await enroll(stack, "import", str(csv_file), "--as", "csm@provider.example")
    assert code == 1
    assert "2 created, 0 already imported, 1 failed" in out
    assert "organization_name" in out
    code, out, _ = await enroll(stack, "import", str(csv_file), "--as", "csm@provider.example")
    assert "0 created, 2 already imported, 1 failed" in out
    await eventually(lambda: len(stack.mail()) == 2)
    await asyncio.sleep(0.5)
    assert len(stack.mail()) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("organization,member_type\nA,customer\n")
    code, _, err = await enroll(stack, "import", str(bad), "--as", "csm@provider.example")
    assert code == 2 and "missing column" in err
