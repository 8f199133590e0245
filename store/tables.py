"""The store's schema: the portal's read model, users and tokens, form links, the outbox.

Alembic owns the schema (store/alembic/versions); this module is what the code queries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, date: Date, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    """Argon2; empty for an administrator who has not activated yet (no password matches it)."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    name: Mapped[str | None] = mapped_column(String(200))
    invitation: Mapped[str | None] = mapped_column(String(16))
    """A member administrator's invitation: invited · expired · activated (None: a user the CLI or an admin made)."""
    invitation_version: Mapped[int] = mapped_column(Integer, default=0)
    invitation_expires_at: Mapped[datetime | None]
    invitation_bounce: Mapped[str | None] = mapped_column(Text)
    invited_by: Mapped[str | None] = mapped_column(String(254))
    activated_at: Mapped[datetime | None]
    last_signed_in_at: Mapped[datetime | None]
    inactive_warned_at: Mapped[datetime | None]
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped when the user's sessions must end (second factor changed or reset, password reset, disabled):
    a session cookie carries the epoch it was issued in."""
    totp_secret: Mapped[str | None] = mapped_column(Text)
    """The second factor's TOTP key, sealed (store.sealed); None until it is turned on."""
    totp_pending: Mapped[str | None] = mapped_column(Text)
    """The key shown on /me/second-factor, sealed, until a code from it turns it on."""
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    """The last TOTP time step accepted: a code is accepted once, so only later steps pass."""
    second_factor_at: Mapped[datetime | None]


class RecoveryCode(Base):
    """One of a user's ten recovery codes, by its keyed hash; used once."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class UserLink(Base):
    """An activation link (`/activate/<token>`) or a password reset link (`/reset/<token>`), by the SHA-256 of
    its token: the token itself is stored nowhere. Single use: `used_at` is set by a conditional update."""

    __tablename__ = "user_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    """activation · reset"""
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Enrollment(Base):
    __tablename__ = "enrollments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    organization_name: Mapped[str] = mapped_column(String(200))
    organization_key: Mapped[str] = mapped_column(String(200))
    member_type: Mapped[str] = mapped_column(String(16))
    service_end_date: Mapped[date]
    display_users_purchased: Mapped[bool] = mapped_column(Boolean)
    users_purchased: Mapped[int | None] = mapped_column(Integer)
    corporate_contact_email: Mapped[str] = mapped_column(String(254))
    reseller_account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    """The Bounced marker: the contact's address was refused for good (beside the status, not a status)."""
    bounce_reason: Mapped[str | None] = mapped_column(Text)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    invitation_sent_at: Mapped[datetime | None]
    account_id: Mapped[str | None] = mapped_column(String(64))
    link_version: Mapped[int] = mapped_column(Integer, default=0)
    form: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime]
    record_version: Mapped[int | None] = mapped_column(Integer)
    """The workflow's event counter (`event-<n>` of the record's key) of the record the row holds: an older record
    arriving late (a timed-out attempt still running) changes nothing."""

    __table_args__ = (
        Index("ix_enrollments_created", "created_at", "id"),
        Index("ix_enrollments_status_created", "status", "created_at", "id"),
        Index("ix_enrollments_type_created", "member_type", "created_at", "id"),
        # The organization sorts, with and without a filter, walk these instead of sorting every match.
        Index("ix_enrollments_organization", "organization_key", "id"),
        Index("ix_enrollments_status_organization", "status", "organization_key", "id"),
        Index("ix_enrollments_type_organization", "member_type", "organization_key", "id"),
    )


class OrganizationClaim(Base):
    """One open enrollment or live account per organization: the primary key is the guard."""

    __tablename__ = "organization_claims"
    organization_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime]


class TimelineEntry(Base):
    """The audit trail, append-only: every change to an enrollment, an account, a user or a token.

    Entries of user management have neither an enrollment nor an account. On PostgreSQL a trigger refuses
    UPDATE and DELETE (migration 0002); the code only ever inserts.
    """

    __tablename__ = "timeline"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(254))
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(64))


class SignInThrottle(Base):
    """Failed sign-ins of one email or one source address (by the SHA-256 of either), and its lock."""

    __tablename__ = "sign_in_throttle"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class FormLink(Base):
    """A form link by the SHA-256 of its token; the token itself is stored nowhere."""

    __tablename__ = "form_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    dead_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    """The first open; set once, by a conditional update, so only the first open signals the workflow."""


class OutboxEmail(Base):
    """Every email the product sends, keyed by workflow id + activity id so a retry never mails twice."""

    __tablename__ = "outbox"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[str] = mapped_column(String(300), index=True)
    state: Mapped[str] = mapped_column(String(16))
    """sending · sent · failed (permanently) · bounced · dropped (its link died first) · delivered · complained"""
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    event_at: Mapped[datetime | None]
    """When a provider last reported on it (POST /api/mail-events)."""
    delivered_to: Mapped[str | None] = mapped_column(Text)
    """The recipients the relay accepted it for so far, one a line: a retry after a 4xx for another recipient
    sends only to those still owed."""
    refused_to: Mapped[str | None] = mapped_column(Text)
    """The recipients refused for good (5xx at RCPT) while others were accepted, `address: reply` one a line."""

    # The unsent emails (sending, retrying) and the oldest of them, for the API's metrics at every scrape.
    __table_args__ = (Index("ix_outbox_state_created", "state", "created_at"),)


class MailHealth(Base):
    """One row (id 1): whether the relay is accepting mail, and its last reply while it is not."""

    __tablename__ = "mail_health"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    failing_since: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]


class Account(Base):
    """A member account: the read model of one MemberAccountWorkflow."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    organization_name: Mapped[str] = mapped_column(String(200))
    organization_key: Mapped[str] = mapped_column(String(200), index=True)
    member_type: Mapped[str] = mapped_column(String(16))
    service_start_date: Mapped[date]
    service_end_date: Mapped[date]
    display_users_purchased: Mapped[bool] = mapped_column(Boolean)
    users_purchased: Mapped[int | None] = mapped_column(Integer)
    users_existing: Mapped[int | None] = mapped_column(Integer)
    users_reported_at: Mapped[datetime | None]
    reseller_account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    contacts: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    record_version: Mapped[int | None] = mapped_column(Integer)
    """The account workflow's event counter (`event-<n>` of the record's key) of the record the row holds: an
    older record arriving late changes nothing (migration 0010)."""

    __table_args__ = (
        Index("ix_accounts_created", "created_at", "id"),
        Index("ix_accounts_status_created", "status", "created_at", "id"),
    )


class CredentialBatch(Base):
    """One PSKC file a manufacturer uploaded, imported by its CredentialImportWorkflow (`credential-batch-<id>`).

    The file and its decryption input wait here sealed (credentials.sealing, under `ENROLL_SECRETS_KEY`) until the
    batch ends, when both are deleted (NULLed). The same file again (by SHA-256) for the same account is this batch."""

    __tablename__ = "credential_batches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    """Importing · Imported · Rejected"""
    total: Mapped[int | None] = mapped_column(Integer)
    """The keys in the file, once it was read (None until then)."""
    processed: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    """Why the whole batch was rejected (a file-level problem), in one sentence."""
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    file_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    decryption_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        # One batch per file and account, but a batch rejected as a whole (a wrong passphrase) does not hold the
        # file: uploaded again, it starts anew.
        Index(
            "uq_credential_batches_account_sha256",
            "account_id",
            "sha256",
            unique=True,
            sqlite_where=text("status <> 'Rejected'"),
            postgresql_where=text("status <> 'Rejected'"),
        ),
        Index("ix_credential_batches_account_created", "account_id", "created_at", "id"),
    )


class CredentialStaged(Base):
    """A key of a batch as the file gave it, read once (`prepare_batch`) and imported chunk by chunk: its secret
    sealed like a credential's. Deleted when the batch ends."""

    __tablename__ = "credential_staging"
    batch_id: Mapped[str] = mapped_column(ForeignKey("credential_batches.id"), primary_key=True)
    key_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str | None] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(Text)
    digits: Mapped[int | None] = mapped_column(Integer)
    counter: Mapped[int | None] = mapped_column(BigInteger)
    period: Mapped[int | None] = mapped_column(Integer)
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(64))
    problem: Mapped[str | None] = mapped_column(Text)


class CredentialRejection(Base):
    """A key of a batch that was not imported, with its serial (if any) and why."""

    __tablename__ = "credential_rejections"
    batch_id: Mapped[str] = mapped_column(ForeignKey("credential_batches.id"), primary_key=True)
    key_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class Credential(Base):
    """A token's shared secret, imported from a batch: unique by serial within its manufacturer's account."""

    __tablename__ = "credentials"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    """The manufacturer's member account."""
    serial: Mapped[str] = mapped_column(String(128))
    algorithm: Mapped[str] = mapped_column(String(8))
    """HOTP · TOTP"""
    digits: Mapped[int] = mapped_column(Integer)
    counter: Mapped[int | None] = mapped_column(BigInteger)
    period: Mapped[int | None] = mapped_column(Integer)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """AES-GCM under `ENROLL_SECRETS_KEY` (credentials.sealing), the associated data `credential:<account>:<serial>`."""
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    """The id of the key the secret is sealed under: `enroll credentials rekey` re-seals the others."""
    state: Mapped[str] = mapped_column(String(16))
    """Available · Assigned · Disabled"""
    assigned_account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    assigned_at: Mapped[datetime | None]
    batch_id: Mapped[str] = mapped_column(ForeignKey("credential_batches.id"), index=True)
    key_index: Mapped[int] = mapped_column(Integer)
    """Its position in the batch's file: a retried chunk finds the keys it imported already."""
    imported_at: Mapped[datetime]
    last_counter: Mapped[int | None] = mapped_column(BigInteger)
    """HOTP: the counter of the last code accepted (the next check only looks ahead of it)."""
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    """TOTP: the time step of the last code accepted (a code is accepted once)."""

    __table_args__ = (
        UniqueConstraint("account_id", "serial", name="uq_credentials_account_serial"),
        Index("ix_credentials_account_imported", "account_id", "imported_at", "id"),
        Index("ix_credentials_account_state_imported", "account_id", "state", "imported_at", "id"),
    )


class Event(Base):
    """A state change as other systems see it (GET /api/events, webhooks): written in the transaction of the change
    it describes, once (its id is derived from the change's key). `seq` orders them: an event is only ever added with
    a `seq` above every one committed before it (`store.events.add_event`), so a reader that has seen `seq` n has
    seen every event up to n."""

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    data: Mapped[dict[str, Any]]
    """The record as the API shows it: never a token, a secret or a form link."""
    account_id: Mapped[str | None] = mapped_column(String(64))
    reseller_account_id: Mapped[str | None] = mapped_column(String(64))
    """The reseller whose customer this is about: its users (and webhook endpoints) see the event."""

    __table_args__ = (
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_reseller_seq", "reseller_account_id", "seq"),
        # SQLite: AUTOINCREMENT, so a seq is never reused once the newest events are pruned.
        {"sqlite_autoincrement": True},
    )


class WebhookEndpoint(Base):
    """A URL that receives events, signed per Standard Webhooks; delivered by its WebhookEndpointWorkflow
    (`webhook-endpoint-<id>`)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    events: Mapped[list[str]] = mapped_column(JSON)
    """The event types it receives, or ["*"] for all."""
    owner_user_id: Mapped[str] = mapped_column(String(32))
    owner_email: Mapped[str] = mapped_column(String(254))
    """Who is emailed when it is disabled."""
    reseller_account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """A reseller's endpoint receives its customers' events only; None: an admin's, every event."""
    secret: Mapped[str] = mapped_column(Text)
    """`whsec_…`, sealed (store.sealed, the endpoint id as associated data)."""
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    """After a rotation the previous secret signs too, until then (24 h)."""
    status: Mapped[str] = mapped_column(String(16))
    """Enabled · Failing · Disabled"""
    status_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    start_after: Mapped[int] = mapped_column(BigInteger)
    """The newest event `seq` when it was registered: it receives the events after."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event to one endpoint: its id is the `webhook-id` header, the same over every attempt and replay."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    """Pending · Succeeded · Failed (every retry failed) · Cancelled (the endpoint was disabled or deleted)"""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_endpoint_seq", "endpoint_id", "event_seq"),
        Index("ix_webhook_deliveries_created", "created_at"),
    )


class WebhookAttempt(Base):
    """One POST of a delivery: what came back (status, time taken, the first 1 KiB of the answer) or why none did."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_at", "at"),)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    """`<workflow id>/<activity id>/<activity attempt>`: recorded once, whatever the retries of the recording."""
    delivery_id: Mapped[str] = mapped_column(String(40), index=True)
    endpoint_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    """scheduled · replay"""
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
