"""The mail providers' own webhooks on the whole stack (POST /api/mail-events/{ses,postmark,mailgun,sendgrid}):
each signed for real with a key the test makes (an RSA key and a self-signed certificate served for SNS, an ECDSA
P-256 key for SendGrid, an HMAC key for Mailgun, basic auth for Postmark) or with the provider's published example.
A bad signature is refused with 401 and the outbox row is left as it was; a valid permanent bounce marks the
enrollment Bounced and tells the CSM exactly as the generic endpoint does; event kinds we do not act on answer 200;
an SNS subscription is confirmed (its SubscribeURL fetched from a local server) only when signed and listed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from temporalio.testing import WorkflowEnvironment

from domain.settings import Settings
from starter.dev.mailsink import MailSink
from starter.services.mail_providers import Unverified, sendgrid, ses
from store import outbox
from tests.integration.conftest import Stack, eventually, running, stack_settings
from tests.integration.mail_events_test import invited

CONTACT = "pat@acme.example"
TOPIC = "arn:aws:sns:us-east-1:123456789012:enroll-ses-feedback"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "a long postmark webhook password"
MAILGUN_KEY = "key-" + "0123456789abcdef" * 2
JSON = {"Content-Type": "application/json"}


# --- SNS: a signing certificate of our own, served from a local server in place of sns.<region>.amazonaws.com ---


class Sns:
    """An RSA key and a self-signed certificate, signing messages as SNS does (AWS's canonical string), and a
    local HTTP server standing in for SNS: it serves the certificate and records the confirmations it is sent."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        # A path of its own: the app caches certificates by URL across tests.
        self.cert_path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        self.cert_url = f"https://sns.us-east-1.amazonaws.com{self.cert_path}"
        self.requests: list[str] = []
        pem, requests = self.pem, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.fetched: list[str] = []

    async def get(self, url: str) -> bytes:
        """The test's SnsFetcher: what the app asks of an SNS host (after its URL checks), from the local server."""
        self.fetched.append(url)
        parts = urlsplit(url)
        local = f"http://127.0.0.1:{self.server.server_address[1]}{parts.path}" + (
            f"?{parts.query}" if parts.query else ""
        )
        async with httpx.AsyncClient() as client:
            answer = await client.get(local)
        answer.raise_for_status()
        return answer.content

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        message = {"SignatureVersion": version, "SigningCertURL": self.cert_url, **message}
        if message["Type"] == "Notification":
            fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message).encode()
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(signed, padding.PKCS1v15(), algorithm)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def notification(self, ses_event: dict[str, Any], topic: str = TOPIC, version: str = "1") -> dict[str, Any]:
        envelope = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(ses_event),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
        return self.sign(envelope, version)


def ses_bounce(
    message_id: str | None, bounce_type: str = "Permanent", shape: str = "notificationType"
) -> dict[str, Any]:
    """An SES bounce as SES sends it: `notificationType` (identity notifications, original headers included) or
    `eventType` (configuration-set event publishing)."""
    headers = [{"name": "Message-ID", "value": message_id}] if message_id else []
    return {
        shape: "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": CONTACT,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 gone",
                }
            ],
            "timestamp": "2026-01-01T00:00:00.000Z",
            "feedbackId": "0100-feedback",
        },
        "mail": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "messageId": "0100018c-ses-own-id-000000",
            "source": "enroll@provider.example",
            "destination": [CONTACT],
            "headersTruncated": False,
            "headers": headers,
            "commonHeaders": {"messageId": "<0100018c-ses-own-id-000000@email.amazonses.com>"},
        },
    }


@pytest.fixture
def sns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sns]:
    local = Sns()
    monkeypatch.setattr(ses, "fetcher", local)
    yield local
    local.stop()


# --- SendGrid and the stack with every provider configured ---

SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


def sendgrid_headers(body: bytes, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        **JSON,
        sendgrid.SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        sendgrid.TIMESTAMP_HEADER: timestamp,
    }


def mailgun_body(event_data: dict[str, Any], key: str = MAILGUN_KEY, at: float | None = None) -> dict[str, Any]:
    timestamp = str(int(time.time() if at is None else at))
    token = uuid.uuid4().hex * 2
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def basic(user: str, password: str) -> dict[str, str]:
    return {**JSON, "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest_asyncio.fixture
async def providers(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    """The stack with every provider configured: the SNS topic listed, Postmark's basic auth, Mailgun's signing
    key and SendGrid's verification key."""
    settings = stack_settings(
        tmp_path,
        database_url,
        temporal,
        mail_sink,
        task_queue,
        mail_events_ses_topic_arns=f"arn:aws:sns:eu-west-1:123456789012:other, {TOPIC}",
        mail_events_postmark_username=POSTMARK_USER,
        mail_events_postmark_password=POSTMARK_PASSWORD,
        mail_events_mailgun_signing_key=MAILGUN_KEY,
        mail_events_sendgrid_public_key=SENDGRID_PUBLIC,
    )
    async with running(settings, temporal, mail_sink) as stack:
        yield stack


async def outbox_row(stack: Stack, message_id: str) -> tuple[str, str | None, datetime | None]:
    email = await outbox.by_message_id(stack.settings.effective_database_url, message_id)
    assert email is not None
    return email.state, email.error, email.event_at


async def assert_bounced_once(stack: Stack, enrollment_id: str, reason: str) -> None:
    """Bounced as the generic endpoint leaves it: the marker and reason, one timeline event, the CSM told once."""

    async def bounced() -> bool:
        got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
        return bool(got["bounced"]) and got["status"] == "New"

    await eventually(bounced)
    got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
    assert reason in got["bounce_reason"]
    assert [e["event"] for e in got["timeline"]].count("invitation_bounced") == 1
    await eventually(lambda: any("bounced" in m.subject.lower() for m in stack.mail_to("csm@provider.example")))
    assert len([m for m in stack.mail_to("csm@provider.example") if "bounced" in m.subject.lower()]) == 1


async def not_bounced(stack: Stack, enrollment_id: str) -> bool:
    got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
    return got["bounced"] is False and "invitation_bounced" not in [e["event"] for e in got["timeline"]]


# --- Amazon SES through SNS ---


async def test_an_ses_permanent_bounce_through_sns_marks_the_enrollment_bounced(providers: Stack, sns: Sns) -> None:
    stack = providers
    enrollment_id, message_id = await invited(stack)
    before = await outbox_row(stack, message_id)
    good = sns.notification(ses_bounce(message_id))

    forged = {**good, "Message": good["Message"].replace("5.1.1 gone", "5.1.1 forged")}
    for bad in (forged, {**good, "Signature": sns.notification(ses_bounce(message_id))["Signature"]}):
        refused = await stack.api.post("/api/mail-events/ses", json=bad, headers=JSON)
        assert refused.status_code == 401, refused.text
    assert await outbox_row(stack, message_id) == before, "a bad signature changes nothing"

    # As SNS sends it: JSON in a text/plain body.
    as_sns = {"Content-Type": "text/plain; charset=UTF-8"}
    reported = await stack.api.post("/api/mail-events/ses", content=json.dumps(good), headers=as_sns)
    assert reported.status_code == 200, reported.text
    answer = reported.json()
    assert answer["applied"] is True and answer["reports"][0]["report"]["enrollment_id"] == enrollment_id
    await assert_bounced_once(stack, enrollment_id, "550 5.1.1 gone")
    assert (await outbox_row(stack, message_id))[0] == "bounced"

    again = await stack.api.post("/api/mail-events/ses", json=good, headers=JSON)
    assert again.status_code == 200 and again.json()["applied"] is False, "SNS redelivering changes nothing"
    assert sns.fetched == [sns.cert_url], "the signing certificate is fetched once, then cached"


async def test_ses_event_publishing_with_signature_version_2_and_what_is_not_acted_on(
    providers: Stack, sns: Sns
) -> None:
    stack = providers
    enrollment_id, message_id = await invited(stack)
    before = await outbox_row(stack, message_id)

    transient = sns.notification(ses_bounce(message_id, "Transient", shape="eventType"), version="2")
    answer = await stack.api.post("/api/mail-events/ses", json=transient, headers=JSON)
    assert answer.status_code == 200 and answer.json()["applied"] is False, answer.text
    assert "not acted on" in answer.json()["reports"][0]["note"]
    opened = sns.notification({"eventType": "Open", "mail": {"headers": [{"name": "Message-ID", "value": message_id}]}})
    assert (await stack.api.post("/api/mail-events/ses", json=opened, headers=JSON)).json()["applied"] is False
    # Without the original headers the notification carries only SES's own id: 200, not applied, and why.
    unmatched = await stack.api.post("/api/mail-events/ses", json=sns.notification(ses_bounce(None)), headers=JSON)
    assert unmatched.status_code == 200 and unmatched.json()["applied"] is False
    assert "Include original headers" in unmatched.json()["reports"][0]["note"]
    assert await outbox_row(stack, message_id) == before and await not_bounced(stack, enrollment_id)

    # A topic not listed, or a certificate from anywhere but an SNS host, is refused before anything is fetched.
    other_topic = sns.notification(ses_bounce(message_id), topic="arn:aws:sns:us-east-1:999999999999:theirs")
    assert (await stack.api.post("/api/mail-events/ses", json=other_topic, headers=JSON)).status_code == 401
    fetched = list(sns.fetched)
    for host in ("https://sns.us-east-1.amazonaws.com.evil.example", "http://sns.us-east-1.amazonaws.com"):
        elsewhere = sns.sign({**transient, "SigningCertURL": f"{host}/SimpleNotificationService.pem"}, "2")
        refused = await stack.api.post("/api/mail-events/ses", json=elsewhere, headers=JSON)
        assert refused.status_code == 401 and "Amazon SNS host" in refused.json()["detail"]
    assert sns.fetched == fetched

    permanent = sns.notification(ses_bounce(message_id, shape="eventType"), version="2")
    reported = await stack.api.post("/api/mail-events/ses", json=permanent, headers=JSON)
    assert reported.status_code == 200 and reported.json()["applied"] is True, reported.text
    await assert_bounced_once(stack, enrollment_id, "550 5.1.1 gone")


async def test_an_sns_subscription_is_confirmed_only_when_signed_and_its_topic_listed(
    providers: Stack, sns: Sns
) -> None:
    stack = providers

    def confirmation(topic: str) -> dict[str, Any]:
        token = uuid.uuid4().hex
        return sns.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": token,
                "TopicArn": topic,
                "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm, visit the SubscribeURL.",
                "SubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token={token}",
                "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
        )

    listed = confirmation(TOPIC)
    tampered = {**listed, "SubscribeURL": listed["SubscribeURL"] + "0"}
    assert (await stack.api.post("/api/mail-events/ses", json=tampered, headers=JSON)).status_code == 401
    unlisted = confirmation("arn:aws:sns:us-east-1:999999999999:theirs")
    assert (await stack.api.post("/api/mail-events/ses", json=unlisted, headers=JSON)).status_code == 401
    assert not [path for path in sns.requests if "ConfirmSubscription" in path], "nothing confirmed yet"

    confirmed = await stack.api.post("/api/mail-events/ses", json=listed, headers=JSON)
    assert confirmed.status_code == 200 and confirmed.json()["note"] == "subscription confirmed", confirmed.text
    token = listed["Token"]
    assert [p for p in sns.requests if "ConfirmSubscription" in p] == [f"/?Action=ConfirmSubscription&Token={token}"]


# --- Postmark, Mailgun, SendGrid ---


async def test_a_postmark_hard_bounce_with_basic_auth_marks_the_enrollment_bounced(providers: Stack) -> None:
    stack = providers
    enrollment_id, message_id = await invited(stack)
    before = await outbox_row(stack, message_id)
    record = {
        "RecordType": "Bounce",
        "ID": 42,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 gone",
        "Email": CONTACT,
        "Metadata": {"message-id": message_id},
        "MessageStream": "outbound",
    }
    for headers in (basic(POSTMARK_USER, "wrong password"), basic("someone", POSTMARK_PASSWORD), JSON):
        refused = await stack.api.post("/api/mail-events/postmark", json=record, headers=headers)
        assert refused.status_code == 401, refused.text
        assert POSTMARK_PASSWORD not in refused.text
    assert await outbox_row(stack, message_id) == before

    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    soft = {**record, "Type": "SoftBounce", "TypeCode": 4096}
    assert (await stack.api.post("/api/mail-events/postmark", json=soft, headers=auth)).json()["applied"] is False
    opened = {"RecordType": "Open", "MessageID": "x", "Recipient": CONTACT, "Metadata": {"message-id": message_id}}
    assert (await stack.api.post("/api/mail-events/postmark", json=opened, headers=auth)).json()["applied"] is False
    bare = {**record, "Metadata": {}}
    unmatched = await stack.api.post("/api/mail-events/postmark", json=bare, headers=auth)
    assert unmatched.status_code == 200 and "Metadata" in unmatched.json()["reports"][0]["note"]
    assert await outbox_row(stack, message_id) == before and await not_bounced(stack, enrollment_id)

    reported = await stack.api.post("/api/mail-events/postmark", json=record, headers=auth)
    assert reported.status_code == 200 and reported.json()["applied"] is True, reported.text
    await assert_bounced_once(stack, enrollment_id, "550 5.1.1 gone")


async def test_a_mailgun_permanent_failure_with_a_valid_signature_marks_the_enrollment_bounced(
    providers: Stack,
) -> None:
    stack = providers
    enrollment_id, message_id = await invited(stack)
    before = await outbox_row(stack, message_id)
    event = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": CONTACT,
        "message": {"headers": {"message-id": message_id.strip("<>"), "to": CONTACT}},
        "delivery-status": {"code": 550, "description": "5.1.1 gone"},
    }
    forged = mailgun_body(event, key="key-not-the-one-configured-here-0000")
    stale = mailgun_body(event, at=time.time() - 16 * 60)
    tampered = mailgun_body(event)
    tampered["signature"]["timestamp"] = str(int(tampered["signature"]["timestamp"]) + 1)
    for bad in (forged, stale, tampered, {"event-data": event}):
        refused = await stack.api.post("/api/mail-events/mailgun", json=bad, headers=JSON)
        assert refused.status_code == 401, refused.text
    assert await outbox_row(stack, message_id) == before

    temporary = mailgun_body({**event, "severity": "temporary"})
    assert (await stack.api.post("/api/mail-events/mailgun", json=temporary, headers=JSON)).json()["applied"] is False
    assert await outbox_row(stack, message_id) == before and await not_bounced(stack, enrollment_id)

    good = mailgun_body(event)
    reported = await stack.api.post("/api/mail-events/mailgun", json=good, headers=JSON)
    assert reported.status_code == 200 and reported.json()["applied"] is True, reported.text
    await assert_bounced_once(stack, enrollment_id, "550 5.1.1 gone")
    replayed = await stack.api.post("/api/mail-events/mailgun", json=good, headers=JSON)
    assert replayed.status_code == 200 and replayed.json()["applied"] is False
    assert "already received" in replayed.json()["note"]


async def test_a_sendgrid_signed_batch_applies_its_permanent_bounce_only(providers: Stack) -> None:
    stack = providers
    enrollment_id, message_id = await invited(stack)
    before = await outbox_row(stack, message_id)

    def event(kind: str, **more: Any) -> dict[str, Any]:
        return {"email": CONTACT, "timestamp": int(time.time()), "smtp-id": message_id, "event": kind, **more}

    batch = [
        event("processed"),
        event("deferred", response="421 try again later"),
        event("bounce", type="blocked", status="4.0.0", reason="blocked for now"),
        event("bounce", type="bounce", status="5.1.1", reason="550 5.1.1 gone"),
        event("open"),
    ]
    body = json.dumps(batch).encode()
    other_key = ec.generate_private_key(ec.SECP256R1())
    headers = sendgrid_headers(body)
    for bad_body, bad_headers in (
        (body, sendgrid_headers(body, other_key)),
        (body.replace(b"gone", b"here"), headers),
        (body, {**headers, sendgrid.TIMESTAMP_HEADER: str(int(headers[sendgrid.TIMESTAMP_HEADER]) + 1)}),
        (body, JSON),
    ):
        refused = await stack.api.post("/api/mail-events/sendgrid", content=bad_body, headers=bad_headers)
        assert refused.status_code == 401, refused.text
    assert await outbox_row(stack, message_id) == before

    reported = await stack.api.post("/api/mail-events/sendgrid", content=body, headers=headers)
    assert reported.status_code == 200, reported.text
    answer = reported.json()
    assert [r["applied"] for r in answer["reports"]] == [False, False, False, True, False]
    await assert_bounced_once(stack, enrollment_id, "550 5.1.1 gone")


def test_sendgrids_published_example_verifies() -> None:
    """The example SendGrid publishes with its own verifier (sendgrid-python's test_eventwebhook.py)."""
    key = sendgrid.public_key(
        Settings(
            _env_file=None,
            mail_events_sendgrid_public_key=(
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
                "2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
            ),
        )
    )
    payload = (
        json.dumps(
            [
                {
                    "email": "hello@world.com",
                    "event": "dropped",
                    "reason": "Bounced Address",
                    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                    "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                    "timestamp": 1600112492,
                }
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\r\n"
    ).encode()
    signature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
    sendgrid.verify(key, payload, signature, "1600112502")
    with pytest.raises(Unverified):
        sendgrid.verify(key, payload, signature, "1600112503")
    reports = sendgrid.reports(payload)
    assert [(r.event, r.recipient, r.message_ids) for r in reports] == [
        ("bounced", "hello@world.com", ("<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",))
    ]


async def test_a_provider_not_configured_answers_401_and_names_its_setting(stack: Stack, sns: Sns) -> None:
    """Secrets unset (the plain stack): every provider refuses, saying which setting to set."""
    expected = {
        "ses": "ENROLL_MAIL_EVENTS_SES_TOPIC_ARNS",
        "postmark": "ENROLL_MAIL_EVENTS_POSTMARK_PASSWORD",
        "mailgun": "ENROLL_MAIL_EVENTS_MAILGUN_SIGNING_KEY",
        "sendgrid": "ENROLL_MAIL_EVENTS_SENDGRID_PUBLIC_KEY",
    }
    body = sns.notification(ses_bounce("<x@y>"))
    for provider, setting in expected.items():
        refused = await stack.api.post(f"/api/mail-events/{provider}", json=body, headers=basic("a", "b"))
        assert refused.status_code == 401, refused.text
        assert "is not configured" in refused.json()["detail"] and setting in refused.json()["detail"]
    assert sns.fetched == []
