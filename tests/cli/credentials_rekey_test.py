"""`enroll credentials rekey` as an operator runs it (a subprocess) against a SQLite store: every secret re-sealed
under the new key once, and a clear refusal without the key, or without the old one."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import select

from store import credentials as store
from store.db import dispose_all, transaction
from store.migrate import upgrade_to_head
from store.tables import Credential
from tests.credential_batches import keys_value, secrets_keys_of
from tests.store.credentials_test import accounts, entries, imported, new_batch


async def rekey(url: str, tmp_path: Path, secrets_key: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")}
    env.update(ENROLL_DATABASE_URL=url, ENROLL_DATA_DIR=str(tmp_path / "data"), COLUMNS="200", NO_COLOR="1")
    if secrets_key is not None:
        env["ENROLL_SECRETS_KEY"] = secrets_key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "credentials",
        "rekey",
        "--batch",
        "2",
        env=env,
        cwd=os.getcwd(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, " ".join(out.decode().split())


async def test_rekey_reseals_under_the_new_key_once_and_refuses_without_the_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    await accounts(url)
    keys = entries(5)
    await imported(url, (await new_batch(url)).id, keys)
    await dispose_all()
    both = f"k2:{keys_value('k2')},k1:{keys_value('k1')}"

    assert await rekey(url, tmp_path, None) == (
        2,
        "error: ENROLL_SECRETS_KEY is not set: set it to the new key first, followed by the old one",
    )
    code, out = await rekey(url, tmp_path, f"k2:{keys_value('k2')}")
    assert code == 2 and "sealed under key id 'k1', which ENROLL_SECRETS_KEY does not hold" in out
    assert await rekey(url, tmp_path, both) == (
        0,
        "re-sealing under key id k2 5 credentials, 0 staged keys and 0 waiting batches re-sealed",
    )
    assert (await rekey(url, tmp_path, both))[1].endswith(
        "0 credentials, 0 staged keys and 0 waiting batches re-sealed"
    )

    async with transaction(url) as session:
        assert set(await session.scalars(select(Credential.key_id))) == {"k2"}
    page, _ = await store.list_credentials(url)
    for credential in page:
        secret = next(k.secret for k in keys if k.serial == credential.serial)
        assert await store.credential_secret(url, secrets_keys_of("k2"), credential.id) == secret
    await dispose_all()
