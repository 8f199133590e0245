"""Cross-origin calls are allowed to the remote codec alone (the Temporal UI's origin, no credentials): no other
site's page can call the API or the portal with a signed-in user's cookies and read the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from starter.app import create_app
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.support import make_settings
from workflows.codec import new_key_text

UI = "http://127.0.0.1:8233"
ELSEWHERE = "https://evil.example"


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        temporal_address="127.0.0.1:1",
        smtp_port=25,
        task_queue="enrollment",
        payload_key=new_key_text("k1"),
        temporal_ui_url=UI,
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await dispose_all()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_the_api_and_the_portal_answer_no_other_origin(api: httpx.AsyncClient) -> None:
    for origin in (UI, ELSEWHERE):
        for path in ("/api/enrollments", "/api/accounts", "/accounts/new", "/enroll/some-token"):
            for response in (
                await api.options(path, headers=preflight(origin)),
                await api.get(path, headers={"Origin": origin}),
            ):
                assert "access-control-allow-origin" not in response.headers, (origin, path)
                assert "access-control-allow-credentials" not in response.headers, (origin, path)


async def test_the_codec_answers_the_temporal_ui_without_credentials(api: httpx.AsyncClient) -> None:
    allowed = await api.options("/codec/decode", headers=preflight(UI))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    assert "access-control-allow-credentials" not in allowed.headers

    unsigned = await api.post("/codec/decode", json={"payloads": []}, headers={"Origin": UI})
    assert unsigned.status_code == 401  # the UI still needs an API token
    assert unsigned.headers["access-control-allow-origin"] == UI
    assert "access-control-allow-credentials" not in unsigned.headers

    refused = await api.options("/codec/decode", headers=preflight(ELSEWHERE))
    assert "access-control-allow-origin" not in refused.headers
