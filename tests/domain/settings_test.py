"""Secrets in settings: never printed, and a placeholder or short ENROLL_SECRET_KEY refuses to start outside the
dev stack."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from domain.settings import MIN_SECRET_KEY_LENGTH, Settings

SECRET_FIELDS = {
    "smtp_password": "relay-password-9f8e7d",
    "secret_key": "s3cr3t-" + "k" * 40,
    "payload_key": "2026a:c2VjcmV0LXBheWxvYWQta2V5LWJ5dGVz",
    "temporal_api_key": "cloud-api-key-0a1b2c3d",
}
GOOD_KEY = secrets.token_urlsafe(48)


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_secrets_are_secret_str_and_never_printed(tmp_path: Path) -> None:
    made = settings(tmp_path, **SECRET_FIELDS)
    shown = [repr(made), str(made), str(made.model_dump()), made.model_dump_json()]
    for name, value in SECRET_FIELDS.items():
        field = getattr(made, name)
        assert isinstance(field, SecretStr), f"{name} is {type(field).__name__}"
        assert field.get_secret_value() == value
        for text in shown:
            assert value not in text, f"{name} shows in {text[:200]}"


def test_the_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLL_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("ENROLL_SMTP_PASSWORD", "relay-password")
    monkeypatch.setenv("ENROLL_TEMPORAL_API_KEY", " cloud-key\n")
    monkeypatch.setenv("ENROLL_PAYLOAD_KEY", "")
    made = Settings(_env_file=None, data_dir=tmp_path)
    assert made.secret_key is not None and made.secret_key.get_secret_value() == GOOD_KEY
    assert made.smtp_password is not None and made.smtp_password.get_secret_value() == "relay-password"
    assert made.temporal_api_key is not None and made.temporal_api_key.get_secret_value() == "cloud-key"
    assert made.payload_key is None, "an empty value is unset"
    assert made.signing_key == GOOD_KEY.encode()
    assert made.missing_secret() is None


@pytest.mark.parametrize(
    "key",
    [
        "change-me",
        "changeme",
        "CHANGEME",
        "secret",
        "dev",
        "REPLACE-with-a-long-random-string",  # deploy/k8s/secret.example.yaml
        "please-change-me-to-something-long-and-random",
        "x" * 64,
        GOOD_KEY[: MIN_SECRET_KEY_LENGTH - 1],
        "a-test-secret-key",
    ],
)
def test_a_placeholder_or_short_key_is_refused_outside_the_dev_stack(tmp_path: Path, key: str) -> None:
    problem = settings(tmp_path, secret_key=key).missing_secret()
    assert problem is not None, f"{key!r} was accepted"
    assert "ENROLL_SECRET_KEY" in problem, problem
    assert len(key) < 10 or key not in problem, "the refusal does not print the key"
    assert settings(tmp_path, secret_key=key, embedded=True).missing_secret() is None, "the dev stack may use it"


def test_a_missing_key_is_refused_outside_the_dev_stack_only(tmp_path: Path) -> None:
    problem = settings(tmp_path).missing_secret()
    assert problem is not None and "not set" in problem
    assert settings(tmp_path, secret_key="  ").missing_secret() == problem
    assert settings(tmp_path, embedded=True).missing_secret() is None


def test_a_long_random_key_starts(tmp_path: Path) -> None:
    assert settings(tmp_path, secret_key=GOOD_KEY).missing_secret() is None
    assert settings(tmp_path, secret_key=secrets.token_hex(16)).missing_secret() is None
