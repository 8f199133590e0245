"""The portal's session cookie and `?next=` on their own (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.responses import Response
from starlette.requests import Request

from domain.settings import Settings
from starter.portal.session import COOKIE, local_path, new_session, read_session, write_session


def settings_for(tmp_path: Path, public_url: str = "http://127.0.0.1:8000") -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, secret_key="a test secret key", public_url=public_url)


def request_with(cookie: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", cookie.encode())]})


def issued_cookie(settings: Settings, user_id: str | None) -> tuple[str, str]:
    response = Response()
    session = new_session(user_id)
    write_session(response, settings, session)
    header = response.headers["set-cookie"]
    return header, header.split(";")[0]


def test_the_cookie_carries_user_csrf_and_issue_time_and_is_locked_down(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    header, pair = issued_cookie(settings, "u1")
    assert "HttpOnly" in header and "SameSite=lax" in header and "Secure" not in header
    session = read_session(request_with(pair), settings)
    assert session is not None and session.user_id == "u1" and len(session.csrf) >= 32 and session.issued_at > 0
    secure_header, _ = issued_cookie(settings_for(tmp_path, "https://enroll.example"), "u1")
    assert "Secure" in secure_header


def test_a_tampered_or_foreign_cookie_is_no_session(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    _, pair = issued_cookie(settings, "u1")
    name, value = pair.split("=", 1)
    assert name == COOKIE
    forged = value.replace(value[2], "A" if value[2] != "A" else "B", 1)
    assert read_session(request_with(f"{COOKIE}={forged}"), settings) is None
    other = Settings(_env_file=None, data_dir=tmp_path, secret_key="another key")
    assert read_session(request_with(pair), other) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/enrollments?status=New", "/enrollments?status=New"),
        ("/review/abc", "/review/abc"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_only_ever_leads_to_a_page_of_this_site(target: object, expected: str) -> None:
    assert local_path(target) == expected
