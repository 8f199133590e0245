"""Token secrets sealed at rest (credentials.sealing) and the settings that carry the keys."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from credentials.pskc import MAX_BYTES_DEFAULT
from credentials.sealing import (
    SecretsKeyError,
    SecretsKeys,
    UnsealError,
    key_id_of,
    new_key_text,
    reseal,
    seal,
    unseal,
)
from domain.settings import Settings

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
SECRET = bytes.fromhex("3132333435363738393031323334353637383930")


def test_a_sealed_secret_opens_with_its_key_and_associated_data() -> None:
    keys = SecretsKeys.parse(f"k1:{K1}")
    blob = seal(keys, SECRET, aad=b"credential:acme:SN1")
    assert SECRET not in blob and SECRET.hex().encode() not in blob
    assert unseal(keys, blob, aad=b"credential:acme:SN1") == SECRET
    assert key_id_of(blob) == "k1"
    assert seal(keys, SECRET, aad=b"x") != seal(keys, SECRET, aad=b"x"), "a fresh nonce every time"


def test_the_wrong_associated_data_or_a_changed_blob_does_not_open() -> None:
    keys = SecretsKeys.parse(f"k1:{K1}")
    blob = seal(keys, SECRET, aad=b"credential:acme:SN1")
    with pytest.raises(UnsealError):
        unseal(keys, blob, aad=b"credential:acme:SN2")
    changed = bytearray(blob)
    changed[-1] ^= 1
    with pytest.raises(UnsealError):
        unseal(keys, bytes(changed), aad=b"credential:acme:SN1")
    relabelled = blob.replace(b"k1", b"k2", 1)  # the header is authenticated too
    with pytest.raises(UnsealError):
        unseal(SecretsKeys.parse(f"k2:{K1}"), relabelled, aad=b"credential:acme:SN1")
    for junk in (b"", b"\x01", b"\x02\x02k1" + bytes(40), b"\x01\x02k1" + bytes(5)):
        with pytest.raises(UnsealError):
            unseal(keys, junk, aad=b"")


def test_rotation_old_blobs_open_new_ones_use_the_first_key() -> None:
    old_keys = SecretsKeys.parse(f"k1:{K1}")
    old = seal(old_keys, SECRET, aad=b"a")
    rotated = SecretsKeys.parse(f"k2:{K2}, k1:{K1}")
    assert rotated.current_id == "k2"
    assert unseal(rotated, old, aad=b"a") == SECRET
    new = seal(rotated, SECRET, aad=b"a")
    assert key_id_of(new) == "k2"
    with pytest.raises(UnsealError, match="key k2, which ENROLL_SECRETS_KEY no longer holds"):
        unseal(old_keys, new, aad=b"a")
    resealed = reseal(rotated, old, aad=b"a")
    assert key_id_of(resealed) == "k2" and unseal(SecretsKeys.parse(f"k2:{K2}"), resealed, aad=b"a") == SECRET
    assert reseal(rotated, resealed, aad=b"a") is resealed, "already under the current key: unchanged"
    with pytest.raises(UnsealError):
        reseal(rotated, old, aad=b"b")


def test_the_keys_are_not_in_their_repr() -> None:
    keys = SecretsKeys.parse(f"k1:{K1}")
    assert K1 not in repr(keys) and "1111" not in repr(keys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no key given"),
        (" , ", "no key given"),
        (K1, "each key must be written id:base64key"),
        (f"bad id:{K1}", "each key must be written id:base64key"),
        ("k1:not base64!!", "key k1 is not valid base64"),
        (f"k1:{base64.b64encode(b'1' * 16).decode()}", "key k1 must be 32 bytes (256 bits) of base64; it is 16"),
        (f"k1:{K1},k1:{K2}", "key id k1 appears twice"),
    ],
)
def test_a_bad_secrets_key_value_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SecretsKeyError, match=re.escape(message)) as caught:
        SecretsKeys.parse(text)
    assert str(caught.value).startswith("ENROLL_SECRETS_KEY: ")


def test_new_key_text_parses() -> None:
    keys = SecretsKeys.parse(new_key_text("2026a"))
    assert keys.current_id == "2026a" and len(keys.keys["2026a"]) == 32


# -- settings ----------------------------------------------------------------------------------------------------


def test_a_bad_enroll_secrets_key_is_a_clear_settings_error_that_does_not_echo_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = base64.b64encode(b"topsecret-material").decode()
    monkeypatch.setenv("ENROLL_SECRETS_KEY", f"k1:{short}")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, data_dir=tmp_path)
    text = str(caught.value)
    assert "secrets_key" in text and "ENROLL_SECRETS_KEY: key k1 must be 32 bytes" in text
    assert short not in text


def test_the_secrets_key_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLL_SECRETS_KEY", f"k2:{K2},k1:{K1}")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.secrets_keys is not None and settings.secrets_keys.current_id == "k2"
    assert settings.missing_secrets_key() is None
    assert K2 not in repr(settings) and K2 not in str(settings.model_dump())


def test_without_a_secrets_key_uploads_are_refused_outside_the_dev_stack(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, secrets_key="  ")
    assert settings.secrets_key is None and settings.secrets_keys is None
    problem = settings.missing_secrets_key()
    assert problem is not None and "ENROLL_SECRETS_KEY is not set" in problem
    assert not (tmp_path / "secrets_key").exists()


def test_the_dev_stack_makes_one_key_and_keeps_it(tmp_path: Path) -> None:
    first = Settings(_env_file=None, data_dir=tmp_path, embedded=True)
    assert first.missing_secrets_key() is None
    keys = first.secrets_keys
    assert keys is not None and keys.current_id == "dev"
    path = tmp_path / "secrets_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Settings(_env_file=None, data_dir=tmp_path, embedded=True)
    assert again.secrets_keys == keys, "a restarted dev stack opens what it sealed before"
    assert Settings(_env_file=None, data_dir=tmp_path, embedded=True).dev_secrets_key_text() == path.read_text()


def test_the_pskc_size_limit_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None, data_dir=tmp_path).pskc_max_bytes == MAX_BYTES_DEFAULT == 50 * 1024 * 1024
    monkeypatch.setenv("ENROLL_PSKC_MAX_BYTES", "104857600")
    assert Settings(_env_file=None, data_dir=tmp_path).pskc_max_bytes == 100 * 1024 * 1024
    monkeypatch.setenv("ENROLL_PSKC_MAX_BYTES", "0")
    with pytest.raises(ValidationError, match="pskc_max_bytes"):
        Settings(_env_file=None, data_dir=tmp_path)


def test_enroll_up_gives_its_children_the_data_dirs_key_unless_one_is_set(tmp_path: Path) -> None:
    from starter.dev.stack import secrets_key_env

    settings = Settings(_env_file=None, data_dir=tmp_path)
    env = secrets_key_env(settings)
    assert env == {"ENROLL_SECRETS_KEY": (tmp_path / "secrets_key").read_text()}
    assert secrets_key_env(settings) == env, "the same key at every start"
    child = Settings(_env_file=None, data_dir=tmp_path, embedded=True, secrets_key=env["ENROLL_SECRETS_KEY"])
    assert child.secrets_keys == SecretsKeys.parse(env["ENROLL_SECRETS_KEY"])
    assert secrets_key_env(Settings(_env_file=None, data_dir=tmp_path, secrets_key=f"k1:{K1}")) == {}
