"""Every key the workflows send under gives an RFC 5322 Message-ID (`<dot-atom@dot-atom>`), the same one on
every retry: a service end warning's key has a `:`, which providers would rewrite, and a late bounce would
then match nothing."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from activities.email import build_message, message_id_for
from domain.models import EmailKind, EmailRequest, EnrollmentStatus, EnrollmentView, MemberType
from tests.support import make_settings

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
MSG_ID = re.compile(rf"^<{_DOT_ATOM}@{_DOT_ATOM}>$")

KEYS = [
    "enrollment-0193a1b2c3d4/email-invite-1",
    "enrollment-0193a1b2c3d4/email-reminder-2-3",
    "enrollment-0193a1b2c3d4/email-bounced-12",
    "account-0193a1b2c3d4/email-warning-2027-01-01:30",
    "account-0193a1b2c3d4/email-warning-2027-01-01:2.592e+06",
    "account-0193a1b2c3d4/email-warning-2027-01-01:86400",
    "account-0193a1b2c3d4/email-expired-2027-01-01",
    "account-0193a1b2c3d4/email-2027-01-01:ended",
    "administrator-0193a1b2c3d4/email-invite-1",
    "inactive-administrators-2026-12-06T03:00:00Z/warn-0193a1b2c3d4",
    "password-reset/0193a1b2c3d4/9f8e7d6c5b4a3210",
    'odd key/with spaces, <brackets>, "quotes", (comments) [and] josé:é',
    "..leading//and..trailing..",
    "",
]


@pytest.mark.parametrize("key", KEYS)
def test_every_key_gives_a_valid_and_stable_message_id(key: str) -> None:
    made = message_id_for(key, "enrollment@provider.example")
    assert MSG_ID.match(made), f"{key!r} gave {made!r}"
    assert made == message_id_for(key, "enrollment@provider.example"), "a retry must build the same id"


def test_distinct_warning_keys_stay_distinct() -> None:
    made = {message_id_for(f"account-1/email-warning-2027-01-01:{offset}", "e@x.example") for offset in (30, 7, 1)}
    assert len(made) == 3


def test_a_display_name_sender_still_gives_a_valid_domain() -> None:
    made = message_id_for("account-1/email-warning-2027-01-01:30", "Enrollment <enrollment@provider.example>")
    assert made == "<account-1.email-warning-2027-01-01-30@provider.example>"


def test_keys_valid_before_keep_their_message_id() -> None:
    """Ids already sent (and stored in the outbox) stay what they were for keys that were valid."""
    assert message_id_for("enrollment-e1/email-invite-1", "a@b.example") == "<enrollment-e1.email-invite-1@b.example>"


def test_the_built_message_carries_it_without_defects(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, database_url="sqlite+aiosqlite://", temporal_address="unused:7233", smtp_port=1, task_queue="x"
    )
    now = datetime.now(UTC)
    enrollment = EnrollmentView(
        id="e1",
        status=EnrollmentStatus.new,
        service_end_date=date(2030, 1, 1),
        member_type=MemberType.customer,
        display_users_purchased=False,
        users_purchased=None,
        organization_name="Acme Widgets Ltd",
        corporate_contact_email="pat@acme.example",
        reseller_account_id=None,
        created_at=now,
        expires_at=now + timedelta(days=14),
        link_version=1,
    )
    request = EmailRequest(kind=EmailKind.submitted, enrollment=enrollment, to=["pat@acme.example"])
    key = "account-0193/email-warning-2027-01-01:30"
    message = build_message(settings, request, key)
    sent = str(message["Message-ID"])
    assert MSG_ID.match(sent), sent
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    header = parsed["Message-ID"]
    assert str(header).strip() == sent
    assert not header.defects, header.defects
    assert str(build_message(settings, request, key)["Message-ID"]) == sent
    assert str(parsed["X-PM-Metadata-message-id"]).strip() == sent, "Postmark's webhooks carry it back (Metadata)"
