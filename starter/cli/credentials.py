"""`enroll credentials …`: manufacturers' credentials from the terminal (for now, re-sealing them under a new key)."""

from __future__ import annotations

from typing import Annotated

import typer

from credentials.sealing import SecretsKeys
from domain.settings import Settings
from starter.cli.common import console
from starter.cli.common import fail as _fail
from starter.cli.common import run as _run
from store import credentials as credential_store

credentials_app = typer.Typer(help="Manufacturers' credentials (token secrets).", no_args_is_help=True)


def _keys(settings: Settings) -> SecretsKeys:
    keys = settings.secrets_keys
    if keys is None:
        raise _fail("ENROLL_SECRETS_KEY is not set: set it to the new key first, followed by the old one", 2)
    return keys


@credentials_app.command("rekey")
def rekey(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="secrets re-sealed per transaction")] = 500,
) -> None:
    """Re-seal every credential secret (and every batch still importing) under the current key of
    ENROLL_SECRETS_KEY (its first key id). Put the new key first and keep the old one after it until this has run;
    running it again re-seals only what is left."""

    async def job(settings: Settings) -> credential_store.Rekeyed:
        keys = _keys(settings)
        console.print(f"re-sealing under key id {keys.current_id}", highlight=False)
        return await credential_store.rekey(settings.effective_database_url, keys, batch=batch)

    try:
        done = _run(job)
    except credential_store.RekeyError as exc:
        raise _fail(str(exc), 2) from exc
    console.print(
        f"{done.credentials} credentials, {done.staged} staged keys and {done.batches} waiting batches re-sealed",
        highlight=False,
    )
