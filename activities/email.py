"""Email: rendering from template files and sending with aiosmtplib, once per workflow id + activity id."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import cast

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.models import AdministratorMail, EmailKind, EmailRequest, EmailResult
from domain.rules import has_control_characters
from domain.settings import Settings
from observability import names, tracing
from store import outbox

SMTP_TIMEOUT = 30
"""Seconds the relay may take over each step before the attempt gives up (and retries): a stalled relay must
not hold an attempt for the activity's whole timeout."""

QUIT_TIMEOUT = 2.0
"""Seconds the relay may take to answer QUIT after it accepted a message."""

NO_SMTPUTF8 = (
    553,
    "5.6.7 the mail server cannot deliver to an address with non-ASCII characters (no SMTPUTF8)",
)
"""How a recipient the relay can never carry is refused (RFC 6531's code): the relay does not offer SMTPUTF8 and
the address has non-ASCII characters (`josé@…`). It is a bounce for that recipient, as a 5xx at RCPT is."""

_MESSAGE_REFUSED = re.compile(r"^\s*5\.(?:3\.4|2\.3|6\.\d{1,3})\b")
"""The enhanced status of a 5xx that names the message, not the relay: too big (5.3.4, 5.2.3) or its content
refused (5.6.x). Sending it again can never succeed, so it is a bounce for this email."""

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "email"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def form_token(secret: bytes, enrollment_id: str, link_version: int) -> str:
    """The form link's token: unguessable without the secret, the same on every retry, never stored."""
    mac = hmac.new(secret, f"form-link:{enrollment_id}:{link_version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def form_link(settings: Settings, enrollment_id: str, link_version: int) -> str:
    return f"{settings.public_url}/enroll/{form_token(settings.signing_key, enrollment_id, link_version)}"


def activation_token(secret: bytes, user_id: str, link_version: int) -> str:
    """An administrator's activation link token: like the form's, derived (never stored), under its own label."""
    mac = hmac.new(secret, f"activation-link:{user_id}:{link_version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def activation_link(settings: Settings, user_id: str, link_version: int) -> str:
    return f"{settings.public_url}/activate/{activation_token(settings.signing_key, user_id, link_version)}"


RESET_VALID_FOR = "30 minutes"
"""How long a password reset link works (`store.administrators.RESET_TTL`), as the email says it."""


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%A %d %B %Y, %H:%M UTC") if at else "(no deadline)"


def _bad(message: str) -> ApplicationError:
    return ApplicationError(message, type="BadEmailRequest", non_retryable=True)


def render(settings: Settings, request: EmailRequest) -> tuple[str, str, str]:
    """(subject, text, html) of `request`."""
    if request.administrator is not None:
        context = _administrator_context(settings, request.kind, request.administrator)
    elif request.webhook is not None:
        context = {
            "w": request.webhook,
            "endpoint_url": f"{settings.public_url}/webhooks/{request.webhook.endpoint_id}",
        }
    else:
        context = _enrollment_context(settings, request)
    subject_line, _, text = _templates.get_template(f"{request.kind.value}.txt").render(context).partition("\n")
    html = _templates.get_template(f"{request.kind.value}.html").render({**context, "subject": subject_line})
    return subject_line.strip(), text.lstrip("\n"), html


def _enrollment_context(settings: Settings, request: EmailRequest) -> dict[str, object]:
    e, a = request.enrollment, request.account
    subject_of = e or a
    if subject_of is None:
        raise _bad("an email needs an enrollment, an account or an administrator")
    link = None
    if request.kind in (EmailKind.invitation, EmailKind.reminder):
        if e is None or request.link_version is None:
            raise _bad("an invitation or reminder needs an enrollment and a link version")
        link = form_link(settings, e.id, request.link_version)
    return {
        "e": e,
        "a": a,
        "link": link,
        "expires": _when(e.expires_at) if e else "",
        "member_type": subject_of.member_type.value,
        "reason": request.reason or "",
        "detail_url": f"{settings.public_url}/enrollments/{e.id}" if e else "",
        "account_url": f"{settings.public_url}/accounts/{a.id}" if a else "",
    }


def _administrator_context(settings: Settings, kind: EmailKind, m: AdministratorMail) -> dict[str, object]:
    """An email to or about a member administrator: the activation link is derived here, the reset link comes
    with the request (the API made it), and neither is logged."""
    link = None
    if kind in (EmailKind.administrator_invitation, EmailKind.administrator_reminder):
        if m.link_version is None:
            raise _bad("an administrator's invitation needs a link version")
        link = activation_link(settings, m.user_id, m.link_version)
    elif kind == EmailKind.password_reset:
        if not m.reset_token:
            raise _bad("a password reset email needs its token")
        link = f"{settings.public_url}/reset/{m.reset_token}"
    return {
        "m": m,
        "link": link,
        "expires": _when(m.expires_at),
        "valid_for": RESET_VALID_FOR,
        "member_type": m.member_type.value if m.member_type else "",
        "reason": m.reason or "",
        "administrators_url": f"{settings.public_url}/account/administrators",
        "account_url": f"{settings.public_url}/accounts/{m.account_id}" if m.account_id else "",
        "signin_url": f"{settings.public_url}/signin",
    }


_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
"""A character that may not stand in an RFC 5322 dot-atom (atext and `.`): `:`, spaces, brackets, non-ASCII."""


def dot_atom(text: str, fallback: str = "message") -> str:
    """`text` as an RFC 5322 dot-atom: `/` becomes `.`, every other character outside atext becomes `-`, and
    empty or repeated dots go. Deterministic, so a retry of the same key builds the same Message-ID (late bounces
    match the id the outbox recorded as sent, whatever it is)."""
    atom = _NOT_ATEXT.sub("-", text.replace("/", "."))
    atom = re.sub(r"\.{2,}", ".", atom).strip(".")
    return atom or fallback


def _domain(address: str) -> str:
    return dot_atom(parseaddr(address)[1].rpartition("@")[2], "localhost")


def message_id_for(key: str, mail_from: str) -> str:
    """The Message-ID of the email sent under `key`: `<dot-atom@dot-atom>`, valid whatever the key holds (a
    service end warning's key has a `:`)."""
    return f"<{dot_atom(key)}@{_domain(mail_from)}>"


class _Headers(HeaderRegistry):
    """The standard library's header registry, keeping the class it composes for each header name: it composes a
    new one (`type(...)`) for every header it makes, which was a fifth of the time spent building an email (16
    headers, counting the parts'). The classes hold no state; each header is still its own instance."""

    def __init__(self) -> None:
        super().__init__()
        self._composed: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._composed.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        if key not in self._composed:
            self._composed[key] = super().__getitem__(name)
        return self._composed[key]


def _message_policy() -> policy.EmailPolicy[EmailMessage]:
    """The standard library's default policy, but a Message-ID (ours: `message_id_for`, valid by construction) is
    kept as written instead of parsed: its RFC 5322 parser was a third of the time spent building an email. Its
    registry keeps the header classes it composes (`_Headers`)."""
    registry = _Headers()
    registry.map_to_type("message-id", cast("type[BaseHeader]", UnstructuredHeader))  # typeshed: it is one
    return policy.default.clone(header_factory=registry)


MESSAGE_POLICY = _message_policy()


def build_message(settings: Settings, request: EmailRequest, key: str) -> EmailMessage:
    subject, text, html = render(settings, request)
    for header in [subject, *request.to]:
        if has_control_characters(header):
            raise ApplicationError("a header would carry a line break", type="HeaderInjection", non_retryable=True)
    message = EmailMessage(policy=MESSAGE_POLICY)
    message_id = message_id_for(key, settings.mail_from)
    message["From"] = settings.mail_from
    message["To"] = ", ".join(request.to)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    # Postmark reports on a message by its own id; this header makes its webhooks carry ours back (in Metadata),
    # so POST /api/mail-events/postmark can match them. Other relays pass it on unread.
    message["X-PM-Metadata-message-id"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    """A relay's reply as an operator reads it: `550 5.1.1 User unknown`, one line, kept short."""
    return " ".join(f"{exc.code} {exc.message}".split())[:300]


async def _record_accepted(
    url: str, key: str, *, sent_at: datetime | None, delivered: list[str], refused: list[str], error: str | None
) -> None:
    """Record what the relay accepted: the send (`sent_at`), or, while some recipients are still owed (a 4xx at
    RCPT), who has it so far (`delivered`) and who was refused for good. The message is out: an attempt failing
    or cancelled before this is stored would be retried and send it again, so a store that is briefly down is
    waited for here, and a cancellation (a worker stopping, the activity cancelled) waits for the record and is
    then taken back, as one during QUIT is."""
    record = asyncio.ensure_future(_record_until_stored(url, key, sent_at, delivered, refused, error))
    while True:
        try:
            await asyncio.shield(record)
            return
        except asyncio.CancelledError:
            if record.cancelled():  # the loop itself is going away: nothing left to wait on
                raise
            _uncancel()


async def _record_until_stored(
    url: str, key: str, sent_at: datetime | None, delivered: list[str], refused: list[str], error: str | None
) -> None:
    delay = 0.5
    for _ in range(8):
        try:
            await _store_accepted(url, key, sent_at, delivered, refused, error)
            return
        except (OSError, SQLAlchemyError):
            activity.logger.warning("the store is unreachable; recording the send of %s again in %.1f s", key, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    await _store_accepted(url, key, sent_at, delivered, refused, error)


async def _store_accepted(
    url: str, key: str, sent_at: datetime | None, delivered: list[str], refused: list[str], error: str | None
) -> None:
    """With a send, in the same transaction: mail is flowing (what `_sent` would do in its own otherwise)."""
    await outbox.record_outcome(
        url,
        key,
        sent_at=sent_at,
        error=error,
        state="retrying",
        delivered=delivered,
        refused=refused,
        mail_flowing=True,
    )


async def deliver(settings: Settings, request: EmailRequest, key: str, *, also_to: Sequence[str] = ()) -> EmailResult:
    """Send `request` unless the outbox already recorded a send under `key`; see `_deliver`.

    `also_to`: recipients the workflow never saw, worked out at send time (a reseller's administrators on their
    customer's service-end notices), so that no address of theirs enters a workflow's history. They get the same
    message as blind copies (in the envelope, not in `To`). The first attempt records its whole set in the
    outbox, and every retry sends to that set, less whoever already has it: nobody twice, nobody added or dropped
    halfway. What the relay refused of them stays in the outbox; the result the workflow keeps names only the
    recipients it addressed itself."""
    addressed = {address.lower() for address in request.to}
    extra = [address for address in dict.fromkeys(also_to) if address.lower() not in addressed]
    result = await _deliver(settings, request, key, [*request.to, *extra], addressed)
    if len(result.refused) == len(_addressed_only(result.refused, addressed)):
        return result
    return result.model_copy(update={"refused": _addressed_only(result.refused, addressed)})


def _addressed_only(refused: Sequence[str], addressed: set[str]) -> list[str]:
    """The refusals (`address: reply`) of the recipients the workflow addressed itself."""
    return [line for line in refused if line.partition(": ")[0].lower() in addressed]


def _first_addressed(refused: Sequence[str], addressed: set[str]) -> str:
    """The refusal a bounce reports: one of an addressed recipient when there is one (every refusal, when all
    were refused)."""
    return next(iter(_addressed_only(refused, addressed)), refused[0])


async def _deliver(
    settings: Settings, request: EmailRequest, key: str, recipients: list[str], addressed: set[str]
) -> EmailResult:
    """Send `request` to `recipients` unless the outbox already recorded a send under `key`.

    Classified like a mail system: a recipient refused for good (5xx at RCPT, or an address with non-ASCII
    characters a relay without SMTPUTF8 can never carry: `NO_SMTPUTF8`) or a message refused for good (a 5xx
    naming the message: too big, 5.3.4 / 5.2.3, or its content, 5.6.x) is a bounce, raised as the non-retryable
    `SmtpRecipientRefused` with `[code, reply]` as details; everything else (no connection, 4xx, 5xx at AUTH,
    MAIL FROM or DATA naming the relay, like 554 5.7.1) is trouble on our side and retries until the relay
    accepts, with the relay's last reply kept for `/healthz`.

    With several recipients, the relay may accept the message for some and answer others with a 4xx at RCPT:
    the outbox records who has it, the attempt fails retryably (`SmtpDeferred`), and each retry sends the same
    message (same Message-ID) only to the recipients still owed, until every one has it or was refused for good.

    The send is recorded as soon as the relay accepted it, before QUIT: a worker killed after the relay's 250
    sends it again on retry only if it died within that one store round trip.

    The API calls it outside any activity too (the password reset email): logging and metrics work there, and
    no log line carries more than `key` and the kind, so `key` must never hold a token.
    """
    url = settings.effective_database_url
    message = build_message(settings, request, key)
    message_id = str(message["Message-ID"])
    settled = await outbox.begin_attempt(
        url,
        key=key,
        kind=request.kind.value,
        enrollment_id=_enrollment_of(request),
        account_id=_account_of(request),
        recipients=recipients,
        subject=str(message["Subject"]),
        message_id=message_id,
    )
    if isinstance(settled, EmailResult):
        activity.logger.info("email %s already sent, not sending again", key)
        return settled
    kind = request.kind.value
    owed = settled.owed(settled.recipients or recipients)
    if not owed and settled.delivered:  # every recipient settled by earlier attempts, the send not yet recorded
        return await _sent(url, key, kind, message_id, settled.refused)
    if not owed and settled.refused:  # every recipient was refused for good: the bounce stands
        reply = _first_addressed(settled.refused, addressed).partition(": ")[2]
        code = int(reply[:3]) if reply[:3].isdigit() else 550
        raise ApplicationError(
            f"the mail server refused the recipient: {reply}",
            code,
            reply,
            type="SmtpRecipientRefused",
            non_retryable=True,
        )
    client = _client(settings, await _ehlo_name())
    try:
        with tracing.smtp_span(kind, settings.effective_smtp_host, settings.smtp_port):
            errors = await _send(client, message, owed)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        permanent = [refusal for refusal in exc.recipients if refusal.code >= 500]
        refused = [f"{refusal.recipient}: {_reply(refusal)}" for refusal in permanent]
        if len(permanent) == len(exc.recipients):
            if settled.delivered:  # the others got it on earlier attempts: it is sent, these refused
                at = datetime.now(UTC)
                await _record_accepted(url, key, sent_at=at, delivered=[], refused=refused, error=None)
                return await _sent(url, key, kind, message_id, [*settled.refused, *refused], at)
            first = next((r for r in permanent if r.recipient.lower() in addressed), permanent[0])
            reply = _reply(first)
            await outbox.record_outcome(url, key, sent_at=None, error=reply, state="bounced", refused=refused)
            await outbox.mail_accepted(url)
            raise ApplicationError(
                f"the mail server refused the recipient: {reply}",
                first.code,
                reply,
                type="SmtpRecipientRefused",
                non_retryable=True,
            ) from exc
        reply = _reply(next(refusal for refusal in exc.recipients if refusal.code < 500))
        await _relay_trouble(url, key, reply, kind, "SmtpDeferred", refused=refused)
        raise ApplicationError(f"the mail server deferred the recipient: {reply}", type="SmtpDeferred") from exc
    except aiosmtplib.SMTPResponseException as exc:
        reply = _reply(exc)
        if exc.code >= 500 and _MESSAGE_REFUSED.match(exc.message):
            await outbox.record_outcome(url, key, sent_at=None, error=reply, state="bounced")
            await outbox.mail_accepted(url)
            raise ApplicationError(
                f"the mail server refused the message for good: {reply}",
                exc.code,
                reply,
                type="SmtpRecipientRefused",
                non_retryable=True,
            ) from exc
        await _relay_trouble(url, key, reply, kind, "SmtpDeferred")
        raise ApplicationError(f"the mail server did not accept the message: {reply}", type="SmtpDeferred") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        reply = f"{type(exc).__name__}: {exc}"[:300]
        await _relay_trouble(url, key, reply, kind, "SmtpUnreachable")
        raise ApplicationError(f"the mail server could not be reached: {reply}", type="SmtpUnreachable") from exc
    # The relay has the message now (for every owed recipient but those in `errors`): record that before anything
    # else, QUIT included, so a retry never sends it to them again.
    refused = [f"{address}: {_reply(refusal)}" for address, refusal in _refusals(errors)]
    deferred = [(address, response) for address, response in errors.items() if response.code < 500]
    not_taken = {address.lower() for address in errors}
    delivered = [address for address in owed if address.lower() not in not_taken]
    reply = _reply(aiosmtplib.SMTPResponseException(deferred[0][1].code, deferred[0][1].message)) if deferred else ""
    sent_at = None if deferred else datetime.now(UTC)
    try:
        await _record_accepted(url, key, sent_at=sent_at, delivered=delivered, refused=refused, error=reply or None)
    finally:
        await _goodbye(client)
    if deferred:
        _count(names.EMAIL_FAILURES, kind=kind, error="SmtpDeferred")
        activity.logger.warning(
            "email %s accepted for %d of its recipients, %d deferred (%s); it will be retried for those",
            key,
            len(delivered),
            len(deferred),
            reply,
        )
        await outbox.mail_failing(url, reply)
        raise ApplicationError(f"the mail server deferred a recipient: {reply}", type="SmtpDeferred")
    return await _sent(url, key, kind, message_id, [*settled.refused, *refused], sent_at)


async def _sent(
    url: str, key: str, kind: str, message_id: str, refused: list[str], sent_at: datetime | None = None
) -> EmailResult:
    """The email under `key` is recorded as sent (at `sent_at`, when this attempt recorded it): mail is flowing,
    and this is the send's result."""
    if sent_at is None:
        earlier = await outbox.sent_result(url, key)
        if earlier is None:  # every recipient settled, but no attempt lived to record the send
            sent_at = datetime.now(UTC)
            await _record_accepted(url, key, sent_at=sent_at, delivered=[], refused=[], error=None)
        else:
            sent_at = earlier.sent_at
            await outbox.mail_accepted(url)
    # else: this attempt's `_record_accepted` marked mail as flowing with the send, in one transaction
    _count(names.EMAILS_SENT, kind=kind)
    activity.logger.info("email %s (%s) sent", key, kind)
    return EmailResult(sent_at=sent_at, message_id=message_id, refused=refused)


def _enrollment_of(request: EmailRequest) -> str | None:
    if request.enrollment is not None:
        return request.enrollment.id
    return request.account.enrollment_id if request.account else None


def _account_of(request: EmailRequest) -> str | None:
    if request.account is not None:
        return request.account.id
    if request.administrator is not None:
        return request.administrator.account_id
    return request.enrollment.account_id if request.enrollment else None


_ehlo: list[str] = []


async def _ehlo_name() -> str:
    """The name this worker gives in EHLO: `socket.getfqdn()`, as aiosmtplib would, looked up once per process
    (aiosmtplib looks it up again, on a thread, at every connection)."""
    if not _ehlo:
        _ehlo.append(await asyncio.to_thread(socket.getfqdn))
    return _ehlo[0]


def _client(settings: Settings, local_hostname: str) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.effective_smtp_host,
        local_hostname=local_hostname,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=SMTP_TIMEOUT,
    )


async def _send(
    client: aiosmtplib.SMTP, message: EmailMessage, recipients: list[str]
) -> dict[str, aiosmtplib.SMTPResponse]:
    """One SMTP conversation up to the relay's answer to DATA, as `aiosmtplib.send` has it, to `recipients`. An
    attempt that fails or is cancelled (a worker stopping hands its activities back) drops the connection at once
    instead of waiting on a stalled relay to answer QUIT; after a sent message, the caller records the send and
    then says goodbye (`_goodbye`).

    A relay without SMTPUTF8 cannot carry a recipient with non-ASCII characters: those are refused with
    `NO_SMTPUTF8` (all of them: `SMTPRecipientsRefused`, a bounce), and the others still get the message."""
    try:
        await client.connect()
        try:
            errors, _ = await client.send_message(message, recipients=recipients)
        except aiosmtplib.SMTPNotSupported:
            if all(address.isascii() for address in recipients):
                raise  # no recipient is to blame: a non-ASCII sender is our configuration, retried until fixed
            errors = await _send_without_smtputf8(client, message, recipients)
    except BaseException:
        client.close()
        raise
    return errors


async def _goodbye(client: aiosmtplib.SMTP) -> None:
    """QUIT after a sent message, waiting `QUIT_TIMEOUT` at most. The send is recorded by now: nothing here may
    make the attempt look failed, and a cancellation (a worker stopping) is taken back, as the attempt is done."""
    try:
        await asyncio.wait_for(client.quit(), QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
    except asyncio.CancelledError:
        client.close()
        _uncancel()


async def _send_without_smtputf8(
    client: aiosmtplib.SMTP, message: EmailMessage, recipients: list[str]
) -> dict[str, aiosmtplib.SMTPResponse]:
    """The relay does not offer SMTPUTF8 (aiosmtplib refused before MAIL FROM). Recipients with non-ASCII
    characters are refused for good; the message goes to the others."""
    carried = [address for address in recipients if address.isascii()]
    uncarried = [address for address in recipients if not address.isascii()]
    code, text = NO_SMTPUTF8
    if not carried:
        raise aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, text, a) for a in uncarried])
    errors, _ = await client.send_message(message, recipients=carried)
    return {**errors, **{address: aiosmtplib.SMTPResponse(code, text) for address in uncarried}}


def _uncancel() -> None:
    """Take back a cancellation that arrived after the relay accepted the message: the attempt finishes (and
    records the send) instead of failing into a retry that would send it twice."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _refusals(errors: dict[str, aiosmtplib.SMTPResponse]) -> list[tuple[str, aiosmtplib.SMTPResponseException]]:
    """The recipients refused for good while the others were accepted."""
    return [
        (address, aiosmtplib.SMTPResponseException(response.code, response.message))
        for address, response in errors.items()
        if response.code >= 500
    ]


def _count(name: str, **labels: str) -> None:
    if activity.in_activity():
        activity.metric_meter().create_counter(name, names.DESCRIPTIONS[name]).add(1, labels)


async def _relay_trouble(
    url: str, key: str, reply: str, kind: str, error: str, refused: list[str] | None = None
) -> None:
    """Keep the relay's reply on the email and on the mail health `/healthz` reports; the attempt retries (not to
    the recipients `refused` for good meanwhile)."""
    _count(names.EMAIL_FAILURES, kind=kind, error=error)
    activity.logger.warning("email %s not accepted (%s); it will be retried", key, reply)
    await outbox.record_outcome(url, key, sent_at=None, error=reply, state="retrying", refused=refused or ())
    await outbox.mail_failing(url, reply)
