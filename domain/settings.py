"""Every setting of the product, read from `ENROLL_*` environment variables and `.env`.

The README's Settings table is the contract; this class is its only implementation.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from credentials.sealing import SecretsKeys, new_key_text
from domain.rules import MailDomains

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

DEFAULT_FREE_MAIL_DOMAINS = (
    "gmail.com,googlemail.com,yahoo.com,yahoo.co.uk,hotmail.com,outlook.com,live.com,msn.com,"
    "aol.com,icloud.com,me.com,mail.com,gmx.com,gmx.net,gmx.de,web.de,yandex.com,yandex.ru,"
    "proton.me,protonmail.com,zoho.com,qq.com,163.com,126.com"
)

DEFAULT_PSKC_MAX_BYTES = 50 * 1024 * 1024
"""ENROLL_PSKC_MAX_BYTES's default (credentials.pskc.MAX_BYTES_DEFAULT: 50 MiB)."""

MIN_SECRET_KEY_LENGTH = 32
"""The shortest ENROLL_SECRET_KEY a process outside the dev stack accepts (`token_urlsafe(48)` gives 64)."""

_PLACEHOLDER_WORDS = ("replace", "change-me", "changeme", "change_me", "placeholder", "your-secret", "example")
"""Words that give away a value copied from an example rather than generated (deploy/k8s/secret.example.yaml
has `REPLACE-with-a-long-random-string`)."""

_PLACEHOLDERS = frozenset({"secret", "dev", "development", "test", "password", "key", "secret-key", "secretkey"})


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `4h`, `3d` → timedelta; anything else is a ValueError naming the text."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 4h or 3d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_durations(text: str) -> list[timedelta]:
    """A comma-separated list of durations, sorted; empty text is an empty list."""
    return sorted(parse_duration(part) for part in text.split(",") if part.strip())


def _duration_text(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _durations_text(value: object) -> object:
    return parse_durations(value) if isinstance(value, str) else value


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration_text), AfterValidator(_longer_than_zero)]
"""A setting's length of time, longer than zero, written `90s`, `15m`, `4h` or `3d` (`parse_duration`)."""

Durations = Annotated[list[timedelta], NoDecode, BeforeValidator(_durations_text), AfterValidator(sorted)]
"""A setting's offsets, written `3d,7d` (comma-separated durations; empty for none), shortest first. (`NoDecode`:
the text is not JSON.)"""


class Settings(BaseSettings):
    # hide_input_in_errors: a malformed secret (ENROLL_SECRETS_KEY, …) must not be echoed by the startup error
    model_config = SettingsConfigDict(env_prefix="ENROLL_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path("./.enroll")
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "enrollment"
    database_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    mail_from: str = "enrollment@localhost"
    public_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    secret_key: SecretStr | None = None
    reminders: Durations = Field(default="3d,7d", validate_default=True)
    """Offsets after the invitation at which reminders are emailed."""
    enrollment_ttl: Duration = Field(default="14d", validate_default=True)
    """The form's deadline after the invitation: the enrollment expires then."""
    service_end_warnings: Durations = Field(default="30d,7d,1d", validate_default=True)
    """Offsets before a member account's service end date at which it is warned of."""
    free_mail_domains: str = DEFAULT_FREE_MAIL_DOMAINS
    smtp_utf8: bool = True
    """Whether contact addresses may have non-ASCII local parts (`josé@…`): only if the relay offers SMTPUTF8.
    False refuses them when they are entered; true lets them through, and a relay without SMTPUTF8 bounces them."""
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233")
    dev_mailbox: bool = False
    payload_key: SecretStr | None = None
    embedded: bool = False  # set by `enroll up` for its children: dev mode, where a generated secret will do
    # Operations (docs/operations.md): the worker's Prometheus endpoint, traces over OTLP, the log format.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    otlp_endpoint: str | None = None
    log_format: Literal["text", "json"] = "text"
    # A Temporal cluster behind TLS (mTLS with a client certificate) or Temporal Cloud (an API key).
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    # Members (README "Member administrators"): the second factor, administrators' invitations and inactivity.
    second_factor: Literal["required", "optional"] = "required"
    activation_ttl: Duration = Field(default="7d", validate_default=True)
    """How long an administrator's activation link lives."""
    activation_reminder: Duration = Field(default="3d", validate_default=True)
    """When the activation link's one reminder goes."""
    inactive_disable_days: int = Field(default=180, ge=8)
    # Manufacturers' token secrets (README "For manufacturers"): sealed at rest, uploaded as PSKC files.
    secrets_key: SecretStr | None = None
    """AES-256-GCM keys sealing token secrets, `id:base64key,...` (credentials.sealing): the first seals, all
    unseal. Unset: uploads are refused, except in the dev stack, which makes one of its own."""
    pskc_max_bytes: int = Field(default=DEFAULT_PSKC_MAX_BYTES, ge=1024)
    """The largest PSKC file an upload takes, in bytes."""
    # Data that does not grow for ever (README "Retention"): what is older than this is pruned daily.
    retention_days: int = Field(default=400, ge=1)
    # Events and webhooks (README "Events and webhooks").
    events_retention: Duration = Field(default="30d", validate_default=True)
    """How long events (GET /api/events) and webhook deliveries with their attempts are kept."""
    webhooks_allow_private: bool = False
    """Let webhook endpoints be `http` and on loopback or private addresses: development only (the dev stack)."""
    # The mail providers' own webhooks (POST /api/mail-events/<provider>): each provider's verification secret.
    mail_events_ses_topic_arns: str = ""
    """The SNS topics (ARNs, comma-separated) whose SES notifications `/api/mail-events/ses` takes, and whose
    subscriptions it confirms; empty: SES reports are refused (401). Anyone can point a topic of their own here."""
    mail_events_postmark_username: str | None = None
    """The user of the basic auth in Postmark's webhook URL (`https://user:password@…/api/mail-events/postmark`)."""
    mail_events_postmark_password: SecretStr | None = None
    """The password of that basic auth (Postmark signs nothing: this is its secret); either unset: refused (401)."""
    mail_events_mailgun_signing_key: SecretStr | None = None
    """Mailgun's HTTP webhook signing key (its HMAC key for `/api/mail-events/mailgun`); unset: refused (401)."""
    mail_events_sendgrid_public_key: str | None = None
    """SendGrid's Signed Event Webhook verification key, base64 (DER SubjectPublicKeyInfo, ECDSA P-256) as SendGrid
    shows it, for `/api/mail-events/sendgrid`; unset: refused (401)."""

    def missing_secret(self) -> str | None:
        """Why this process must not start with the ENROLL_SECRET_KEY it has (none, a placeholder, too short), or
        None when it may. The dev stack (`embedded`) generates one of its own when none is set."""
        key = _revealed(self.secret_key)
        if self.embedded and not key:
            return None
        generate = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        if not key:
            return (
                "ENROLL_SECRET_KEY is not set. Outside `enroll up` the stack needs a secret of its own, shared by "
                f"every worker and API process, {generate}."
            )
        if self.embedded:
            return None
        if _is_placeholder(key):
            return (
                "ENROLL_SECRET_KEY is a placeholder, not a secret: anyone who has read the example could sign "
                f"sessions and form links. Set a long random one, {generate}."
            )
        if len(key) < MIN_SECRET_KEY_LENGTH:
            return (
                f"ENROLL_SECRET_KEY is {len(key)} characters long; it must be at least {MIN_SECRET_KEY_LENGTH} "
                f"random characters, {generate}."
            )
        return None

    @field_validator(
        "smtp_password",
        "secret_key",
        "payload_key",
        "temporal_api_key",
        "secrets_key",
        "mail_events_postmark_password",
        "mail_events_mailgun_signing_key",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        if info.field_name == "temporal_api_key":
            value = value.strip()  # pasted from a console, with its newline
        return value if value.strip() else None

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SecretsKeys.parse(value.get_secret_value())  # a SecretsKeyError (a ValueError) says what is wrong
        return value

    @field_validator("otlp_endpoint", "temporal_tls_server_name")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _client_certificate_pair(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "ENROLL_TEMPORAL_TLS_CERT and ENROLL_TEMPORAL_TLS_KEY go together: set both for mTLS, or neither"
            )
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        """TLS to Temporal: asked for, or implied by a client certificate, a CA, a server name or an API key."""
        return bool(
            self.temporal_tls
            or self.temporal_tls_cert
            or self.temporal_tls_ca
            or self.temporal_tls_server_name
            or self.temporal_api_key
        )

    @field_validator("public_url", "temporal_ui_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def free_mail(self) -> MailDomains:
        """The free-mail domains refused for contacts, carrying `smtp_utf8` for the same checks (`check_email`)."""
        domains = (d.strip().lower() for d in self.free_mail_domains.split(",") if d.strip())
        return MailDomains(domains, smtputf8=self.smtp_utf8)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'enroll.db'}"

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or "127.0.0.1:7233"

    @property
    def effective_smtp_host(self) -> str:
        return self.smtp_host or "127.0.0.1"

    @property
    def mailbox_dir(self) -> Path:
        return self.data_dir / "mailbox"

    @cached_property
    def signing_key(self) -> bytes:
        """ENROLL_SECRET_KEY, or a key generated once into the data dir and reused after."""
        key = _revealed(self.secret_key)
        if key:
            return key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()

    @cached_property
    def secrets_keys(self) -> SecretsKeys | None:
        """ENROLL_SECRETS_KEY's keys; in the dev stack without it, the key `dev_secrets_key_text` keeps in the
        data dir; otherwise None, and uploads of token secrets are refused (`missing_secrets_key`)."""
        text = _revealed(self.secrets_key)
        if text:
            return SecretsKeys.parse(text)
        if self.embedded:
            return SecretsKeys.parse(self.dev_secrets_key_text())
        return None

    def missing_secrets_key(self) -> str | None:
        """Why token secrets cannot be taken in (no ENROLL_SECRETS_KEY outside the dev stack), or None."""
        if self.secrets_keys is not None:
            return None
        return (
            "ENROLL_SECRETS_KEY is not set, so token secrets cannot be sealed at rest and uploads are refused. Set "
            "it on every worker and API, e.g. python -c 'from credentials.sealing import new_key_text; "
            "print(new_key_text())'."
        )

    def dev_secrets_key_text(self) -> str:
        """The dev stack's ENROLL_SECRETS_KEY: generated once into the data dir (mode 0600) and reused after, so
        secrets sealed by an earlier `enroll up` still open."""
        path = self.data_dir / "secrets_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(new_key_text("dev"))
        return path.read_text().strip()


def _revealed(value: object) -> str | None:
    """A secret setting's text. `model_copy(update=...)` does not validate, so a plain string is taken too."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


def _is_placeholder(key: str) -> bool:
    """A value from an example or a default (`change-me`, `secret`, `REPLACE-with-...`), or one character over and
    over, rather than generated."""
    folded = key.strip().lower()
    return folded in _PLACEHOLDERS or any(word in folded for word in _PLACEHOLDER_WORDS) or len(set(folded)) < 8


def get_settings() -> Settings:
    return Settings()
