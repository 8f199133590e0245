"""The data the product passes around: workflow inputs, views, activity arguments.

Pure pydantic, no I/O, so workflows can take these through the sandbox.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MemberType(StrEnum):
    customer = "customer"
    reseller = "reseller"
    manufacturer = "manufacturer"


class EnrollmentStatus(StrEnum):
    new = "New"
    pending_review = "Pending Review"
    in_review = "In Review"
    approved = "Approved"
    rejected = "Rejected"
    expired = "Expired"
    cancelled = "Cancelled"


class AccountStatus(StrEnum):
    active = "Active"
    suspended = "Suspended"
    expired = "Expired"
    deleted = "Deleted"


class Role(StrEnum):
    admin = "admin"
    csm = "csm"
    sales = "sales"
    reviewer = "reviewer"
    reseller = "reseller"
    customer = "customer"
    mail_events = "mail-events"
    """A service user for the mail provider's webhook: it may only report on sent emails (POST /api/mail-events)."""
    manufacturer = "manufacturer"
    """An administrator of a credential manufacturer's member account."""


MEMBER_ROLES: dict[MemberType, Role] = {
    MemberType.customer: Role.customer,
    MemberType.reseller: Role.reseller,
    MemberType.manufacturer: Role.manufacturer,
}
"""The role of a member account's administrators, by the account's member type."""


class AdministratorStatus(StrEnum):
    """A member administrator as `/account/administrators` lists them."""

    invited = "Invited"
    active = "Active"
    locked = "Locked"
    disabled = "Disabled"
    expired = "Expired"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AccountFieldsBase(Frozen):
    """The seven fields of "Create New Member Account", declared once: `AccountFields` carries them alone,
    and `EnrollmentView` and `AccountView` extend them with their own. A separate base rather than
    `AccountFields` itself, so that a view is never taken for the fields (`fields: AccountFields`)."""

    service_end_date: date
    member_type: MemberType
    display_users_purchased: bool
    users_purchased: int | None = None
    organization_name: str
    corporate_contact_email: str
    reseller_account_id: str | None = None


class AccountFields(AccountFieldsBase):
    """What the CSM enters on "Create New Member Account", already checked by `domain.rules`."""


class Actor(Frozen):
    """Who did something: a signed-in user, the contact, or the system itself."""

    user_id: str | None = None
    email: str | None = None
    kind: str = "user"
    source: str | None = None
    """The address the request came from (the audit trail's source), when a request did it."""

    @property
    def label(self) -> str:
        return self.email or self.kind


SYSTEM = Actor(kind="system")
CONTACT = Actor(kind="corporate contact")


class TimelineEvent(Frozen):
    at: datetime
    event: str
    actor: str
    note: str | None = None
    source: str | None = None


class Schedule(Frozen):
    """Form deadline, reminder and service-end warning offsets in seconds, fixed when the enrollment starts."""

    reminder_offsets: list[float] = Field(default_factory=list)
    ttl: float
    warning_offsets: list[float] = Field(default_factory=list)


class EnrollmentInput(Frozen):
    """The single argument of EnrollmentWorkflow."""

    enrollment_id: str
    fields: AccountFields
    created_by: Actor
    schedule: Schedule
    state: EnrollmentState | None = None
    """Set when the run continues as new: the enrollment goes on from here, already validated and persisted."""
    history_limit: int = 2000
    """Past this many history events a waiting run continues as new, so its history stays bounded."""


class ContactForm(Frozen):
    """What the corporate contact submits on the public enrollment form."""

    corporate_contact_name: str
    corporate_contact_phone: str
    technical_contact_name: str
    technical_contact_email: str
    technical_contact_phone: str
    billing_contact_name: str
    billing_contact_email: str
    address_line1: str
    city: str
    postal_code: str
    country: str
    accept_terms: bool


class EnrollmentView(AccountFieldsBase):
    """An enrollment as the API, the portal and the `status` query show it: its account fields, and these."""

    id: str
    status: EnrollmentStatus
    created_at: datetime
    created_by: str | None = None
    expires_at: datetime | None = None
    reminders_sent: int = 0
    invitation_sent_at: datetime | None = None
    account_id: str | None = None
    link_version: int = 0
    form: ContactForm | None = None
    bounced: bool = False
    """The Bounced marker, beside the status: the contact's address was refused for good; editing the contact
    or resending clears it."""
    bounce_reason: str | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)


class EnrollmentState(Frozen):
    """What an EnrollmentWorkflow carries into its next run when it continues as new."""

    view: EnrollmentView
    events: int
    invited_version: int
    round_started_at: datetime
    resends: list[datetime] = Field(default_factory=list)
    opened_versions: list[int] = Field(default_factory=list)
    mail: list[QueuedEmail] = Field(default_factory=list)
    """The emails not yet sent when the run handed over (the relay down): the fresh run sends them."""
    updates: list[str] = Field(default_factory=list)
    """The ids of the last updates applied, so one delivered again to the fresh run is not applied twice."""


class RecordEnrollment(Frozen):
    """Write the read model of an enrollment, plus one timeline event keyed for idempotency."""

    view: EnrollmentView
    event_key: str
    event: TimelineEvent
    release_claim: bool = False


class EmailKind(StrEnum):
    invitation = "invitation"
    reminder = "reminder"
    expired = "expired"
    submitted = "submitted"
    submitted_csm = "submitted_csm"
    contact_changed = "contact_changed"
    approved = "approved"
    rejected = "rejected"
    service_end_warning = "service_end_warning"
    account_expired = "account_expired"
    bounced_csm = "bounced_csm"
    administrator_invitation = "administrator_invitation"
    administrator_reminder = "administrator_reminder"
    administrator_bounced = "administrator_bounced"
    administrators_skipped = "administrators_skipped"
    inactive_warning = "inactive_warning"
    password_reset = "password_reset"  # noqa: S105 - an email kind, not a password
    webhook_disabled = "webhook_disabled"


LINK_EMAILS = (EmailKind.invitation, EmailKind.reminder)
"""The emails that carry the contact's form link: only the live link's may go, and a bounce of one marks the
enrollment Bounced."""


class AdministratorMail(Frozen):
    """What an email to or about a member administrator says. Built by the activity that sends it, from the
    store, so neither the address nor the link ever enters a workflow's history."""

    user_id: str
    email: str
    name: str | None = None
    account_id: str | None = None
    """None for a staff user's password reset (staff belong to no member account)."""
    organization_name: str
    member_type: MemberType | None = None
    link_version: int | None = None
    expires_at: datetime | None = None
    invited_by: str | None = None
    reason: str | None = None
    reset_token: str | None = None
    """Only for `password_reset`: the API sends that email itself (no workflow), so the token stays in memory."""


class WebhookNotice(Frozen):
    """What the email to a webhook endpoint's owner says when its deliveries stopped. Built by the activity that
    sends it, from the store: the owner's address never enters the endpoint's history."""

    endpoint_id: str
    url: str
    description: str
    reason: str


class EmailRequest(Frozen):
    """One email to send, about an enrollment, an account, an administrator or a webhook endpoint; workflow id +
    activity id make it idempotent."""

    kind: EmailKind
    enrollment: EnrollmentView | None = None
    account: AccountView | None = None
    administrator: AdministratorMail | None = None
    webhook: WebhookNotice | None = None
    to: list[str]
    link_version: int | None = None
    reason: str | None = None
    current_link_only: bool = False
    """Send an invitation or reminder only while its link version is the enrollment's current one and the
    enrollment is New (checked in the store just before sending); otherwise drop it."""


class EmailResult(Frozen):
    """What became of an email: sent (and to whom not), or dropped because its link died before it went."""

    sent_at: datetime | None = None
    message_id: str | None = None
    dropped: bool = False
    refused: list[str] = Field(default_factory=list)
    """Recipients the relay refused for good while accepting the others: `address: code reply`."""


class MailProblem(Frozen):
    """An email that failed for good, as the workflow records it: a bounce of a recipient, or another failure.

    Built by the mailer from a permanent SMTP refusal, or by `POST /api/mail-events` from a provider's late
    report (`mail_event` update)."""

    kind: EmailKind
    recipient: str
    reason: str
    bounced: bool = True
    event: str = "bounced"
    """bounced · complained · failed"""
    link_version: int | None = None
    """For an invitation or reminder: the link version it carried. A bounce of an older version than the
    enrollment's current one is recorded, not applied."""


class QueuedEmail(Frozen):
    """An email waiting for a workflow's mailer: the request, the activity that sends it and its id (which
    makes it idempotent), and its timeline note. Carried into the fresh run when a run hands over."""

    request: EmailRequest
    sender: Literal["send_invitation", "send_email"] = "send_email"
    activity_id: str
    note: str | None = None


class LinkRequest(Frozen):
    """Open (or kill) the form link of one link version of an enrollment."""

    enrollment_id: str
    link_version: int


class ValidateEnrollment(Frozen):
    """`validate`'s argument: the fields, and the enrollment they belong to (it may hold its own name)."""

    enrollment_id: str
    fields: AccountFields


class FieldError(Frozen):
    field: str
    message: str


class SubmitForm(Frozen):
    """The contact's completed form, for the link version their link carries."""

    link_version: int
    form: ContactForm
    source: str | None = None
    """The address the contact submitted from (the audit trail's source)."""


class CsmAction(Frozen):
    """Resend or delete: who asked and why."""

    actor: Actor
    audit_note: str


class EditEnrollment(Frozen):
    """PATCH: the fields after the edit, why, and whether to invite a changed contact now."""

    actor: Actor
    fields: AccountFields
    audit_note: str
    send_invitation: bool = True


class ReviewAction(Frozen):
    """Start review, approve or reject (a rejection carries its reason)."""

    actor: Actor
    audit_note: str
    reason: str | None = None


class AccountView(AccountFieldsBase):
    """A member account as the API, the portal and its workflow's `status` query show it: its account fields,
    and these."""

    id: str
    enrollment_id: str
    status: AccountStatus
    service_start_date: date
    users_existing: int | None = None
    users_reported_at: datetime | None = None
    contacts: ContactForm | None = None
    created_by: str | None = None
    created_at: datetime
    timeline: list[TimelineEvent] = Field(default_factory=list)


class AccountInput(Frozen):
    """The single argument of MemberAccountWorkflow; `state` carries it across continue-as-new."""

    account_id: str
    enrollment_id: str
    fields: AccountFields
    form: ContactForm | None
    created_by: Actor
    service_start_date: date
    warning_offsets: list[float] = Field(default_factory=list)
    state: AccountView | None = None
    warned: list[str] = Field(default_factory=list)
    events_per_run: int = 1000
    """After this many events a run continues as new, carrying `state`, so its history stays bounded."""
    approved_by: Actor | None = None
    """The reviewer whose approval activated the account (the `activated` event's actor)."""
    events: int = 0
    """Events recorded by earlier runs: the counter (and the store's record version) goes on from here."""
    mail: list[QueuedEmail] = Field(default_factory=list)
    """The emails not yet sent when the run handed over: the fresh run sends them."""
    updates: list[str] = Field(default_factory=list)
    """The ids of the last updates applied, so one delivered again to the fresh run is not applied twice."""
    notice: SkippedNotice | None = None
    """The reviewer's notice of contacts not attached, when it was still being sent at the handover."""


class RecordAccount(Frozen):
    """Write the read model of an account, plus one timeline event keyed for idempotency."""

    view: AccountView
    event_key: str
    event: TimelineEvent | None = None
    release_claim: bool = False


class AccountChange(Frozen):
    """Suspend, reactivate or delete: who and why."""

    actor: Actor
    audit_note: str


class EditAccount(Frozen):
    """PATCH an account: a new service end date and/or Display Users Purchased, with why."""

    actor: Actor
    audit_note: str
    service_end_date: date | None = None
    display_users_purchased: bool | None = None


class AddUsersPurchased(Frozen):
    """An order on top of the cumulative total (1,000 + 100 = 1,100); `add` may be negative for a correction."""

    actor: Actor
    audit_note: str
    add: int


class UsageReport(Frozen):
    """Existing users as the authentication service's metering counted them."""

    users_existing: int
    reported_at: datetime


# --- member administrators ---------------------------------------------------------------------------------


class AdministratorInput(Frozen):
    """The single argument of AdministratorWorkflow: one administrator's invitation, from the first email to
    activation or expiry. No address: the activities read it from the store by `user_id`."""

    user_id: str
    account_id: str
    invited_by: Actor
    activation_ttl: float
    """Seconds a link stays valid."""
    reminder_after: float
    """Seconds after each invitation at which the one reminder goes (none if it would come after expiry)."""
    link_version: int = 1
    """The link version this run starts with (a run started by a resend after the last one closed: one more)."""


class AdministratorView(Frozen):
    """The `status` query of AdministratorWorkflow."""

    user_id: str
    account_id: str
    status: AdministratorStatus
    link_version: int
    expires_at: datetime
    reminders_sent: int = 0
    bounced: bool = False


class InvitationAction(Frozen):
    """Resend an administrator's invitation: who asked (an administrator of the account, or staff)."""

    actor: Actor
    note: str | None = None


class InvitationRound(Frozen):
    """An activity's argument: one link version of one administrator's invitation."""

    user_id: str
    account_id: str
    link_version: int
    expires_at: datetime | None = None


class InvitationEvent(Frozen):
    """Record a step of an administrator's invitation on the account's timeline (and the user's row)."""

    user_id: str
    account_id: str
    event: str
    actor: Actor
    note: str | None = None
    link_version: int | None = None
    expires_at: datetime | None = None
    bounce: str | None = None
    """The relay's refusal, when the event is a bounce: the administrator shows as bounced until resent."""


class InvitationOutcome(Frozen):
    """What the store says of a round: still waiting, activated, or ended otherwise (disabled, replaced)."""

    state: str
    """invited · activated · expired · replaced · disabled"""


class NewAdministrator(Frozen):
    email: str
    name: str | None = None


class CreateAdministrators(Frozen):
    """Approval: make these contacts administrators of the account (one login per address)."""

    account_id: str
    organization_name: str
    member_type: MemberType
    contacts: list[NewAdministrator]
    by: Actor


class AdministratorsCreated(Frozen):
    """What the store made of the contacts: the users to invite, and the addresses not attached (a user of
    another account has them)."""

    invite: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    """Sentences for the timeline and the reviewer: which address was not attached, and why."""


class AdministratorsInvited(Frozen):
    """`create_administrators`' answer to the account's workflow: user ids and counts only (the skipped
    addresses went onto the account's timeline in the store), and the invitation's timing from the settings."""

    invite: list[str] = Field(default_factory=list)
    skipped: int = 0
    activation_ttl: float
    reminder_after: float


class SkippedNotice(Frozen):
    """Tell the approving reviewer which contacts could not become administrators. The activity reads which
    from the account's timeline and the reviewer's address from the store, so no address enters the history."""

    account_id: str
    reviewer_id: str


class InvitationMail(Frozen):
    """`send_administrator_invitation`'s argument: the invitation or the reminder of one round."""

    kind: EmailKind
    round: InvitationRound


class InactiveSweep(Frozen):
    """The daily sweep: warn administrators a week before `days` without a sign-in, disable them at `days`."""

    days: int


class InactiveSwept(Frozen):
    warn: list[str] = Field(default_factory=list)
    """User ids to warn (marked as warned in the same transaction)."""
    disabled: int = 0


class InactiveWarning(Frozen):
    """Warn one administrator that the sweep disables them after `days` without a sign-in."""

    user_id: str
    days: int


class RetentionSweep(Frozen):
    """The daily retention run: prune what ended more than `days` ago (`ENROLL_RETENTION_DAYS`)."""

    days: int


class RetentionCut(Frozen):
    """One pruning activity's argument: delete its kind's rows that ended before `before`, `batch` rows per
    transaction (the cut is computed once, by the workflow, so a retry deletes the same set)."""

    before: datetime
    batch: int = 1000


class RetentionPruned(Frozen):
    deleted: int = 0


class RetentionSwept(Frozen):
    """What a retention run deleted, by kind: counts only, never a row's content."""

    outbox: int = 0
    form_links: int = 0
    user_links: int = 0
    sign_in_throttle: int = 0


class CredentialBatchStatus(StrEnum):
    """A manufacturer's PSKC batch (the `CredentialBatchStatus` search attribute)."""

    importing = "Importing"
    imported = "Imported"
    rejected = "Rejected"


class CredentialState(StrEnum):
    available = "Available"
    assigned = "Assigned"
    disabled = "Disabled"


class CredentialImport(Frozen):
    """CredentialImportWorkflow's input: the batch (its file waits in the store, sealed) and where a run continued
    as new picks up. Ids and counts only: no secret, no file, no decryption input ever enters a payload."""

    batch_id: str
    total: int | None = None
    """The keys of the file, once `prepare_batch` read it (carried into a fresh run)."""
    start: int = 0
    """The first key not imported yet (carried into a fresh run)."""


class CredentialChunk(Frozen):
    """One `import_chunk` activity's argument: the keys [start, start + count) of the batch's file."""

    batch_id: str
    start: int
    count: int


class CredentialBatchPrepared(Frozen):
    """What `prepare_batch` found: the number of keys, or the batch rejected as a whole (its reason is in the store)."""

    status: CredentialBatchStatus
    total: int = 0


class CredentialChunkImported(Frozen):
    """One chunk's outcome: counts only."""

    processed: int
    """Keys of the batch processed so far (this chunk's end)."""
    accepted: int
    """Credentials imported from the batch so far."""


class CredentialImportProgress(Frozen):
    """The `progress` query's answer."""

    processed: int = 0
    total: int | None = None
    status: CredentialBatchStatus = CredentialBatchStatus.importing
