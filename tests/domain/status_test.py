"""The enrollment and member-account status machines, against the statuses the README describes."""

from __future__ import annotations

import re

import pytest

from domain.models import AccountStatus, EnrollmentStatus
from domain.status import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    AccountAction,
    EnrollmentAction,
    account_refusal,
    enrollment_allows,
    enrollment_refusal,
)

# Edit and delete only in New and Pending Review; resend in New and Expired (a new link revives it);
# the reviewer starts from Pending Review and decides from In Review; the contact submits only while New.
ENROLLMENT_ALLOWED: dict[EnrollmentAction, set[EnrollmentStatus]] = {
    EnrollmentAction.edit: {EnrollmentStatus.new, EnrollmentStatus.pending_review},
    EnrollmentAction.cancel: {EnrollmentStatus.new, EnrollmentStatus.pending_review},
    EnrollmentAction.resend: {EnrollmentStatus.new, EnrollmentStatus.expired},
    EnrollmentAction.start_review: {EnrollmentStatus.pending_review},
    EnrollmentAction.approve: {EnrollmentStatus.in_review},
    EnrollmentAction.reject: {EnrollmentStatus.in_review},
    EnrollmentAction.submit_form: {EnrollmentStatus.new},
}

# Active -> Suspended <-> Active; Expired at the service end date; Deleted only from Suspended.
ACCOUNT_ALLOWED: dict[AccountAction, set[AccountStatus]] = {
    AccountAction.suspend: {AccountStatus.active},
    AccountAction.reactivate: {AccountStatus.suspended},
    AccountAction.delete: {AccountStatus.suspended},
    AccountAction.edit: {AccountStatus.active, AccountStatus.suspended, AccountStatus.expired},
    AccountAction.add_users: {AccountStatus.active, AccountStatus.suspended, AccountStatus.expired},
    AccountAction.report_usage: {AccountStatus.active, AccountStatus.suspended, AccountStatus.expired},
}

ENROLLMENT_PAIRS = [
    pytest.param(status, action, id=f"{action.name} in {status.value}")
    for action in EnrollmentAction
    for status in EnrollmentStatus
]
ACCOUNT_PAIRS = [
    pytest.param(status, action, id=f"{action.name} when {status.value}")
    for action in AccountAction
    for status in AccountStatus
]


def assert_sentence(text: str) -> None:
    assert text == text.strip()
    assert text[0].isupper(), text
    assert text.endswith("."), text
    assert text.count(".") == 1, text  # one sentence, not a list of them
    assert "EnrollmentStatus" not in text and "AccountStatus" not in text, text


def test_every_action_has_a_rule() -> None:
    assert set(ENROLLMENT_ALLOWED) == set(EnrollmentAction)
    assert set(ACCOUNT_ALLOWED) == set(AccountAction)


@pytest.mark.parametrize(("status", "action"), ENROLLMENT_PAIRS)
def test_enrollment_action_is_allowed_exactly_per_design(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    expected = status in ENROLLMENT_ALLOWED[action]
    assert enrollment_allows(status, action) is expected
    assert (enrollment_refusal(status, action) is None) is expected


@pytest.mark.parametrize(("status", "action"), ENROLLMENT_PAIRS)
def test_every_enrollment_refusal_is_a_sentence(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    refusal = enrollment_refusal(status, action)
    if refusal is None:
        return
    assert_sentence(refusal)
    if action != EnrollmentAction.submit_form:
        # The CSM or reviewer sees why: the status the enrollment is in.
        assert status.value in refusal
        assert "enrollment" in refusal


@pytest.mark.parametrize("status", sorted(set(EnrollmentStatus) - {EnrollmentStatus.new}))
def test_the_contact_is_told_the_form_is_closed(status: EnrollmentStatus) -> None:
    """The public form's refusal is for the corporate contact: it says the form is closed, not the workflow's state."""
    refusal = enrollment_refusal(status, EnrollmentAction.submit_form)
    assert refusal is not None
    assert_sentence(refusal)
    assert "form" in refusal


@pytest.mark.parametrize("status", [EnrollmentStatus.in_review, EnrollmentStatus.approved, EnrollmentStatus.rejected])
@pytest.mark.parametrize("action", [EnrollmentAction.edit, EnrollmentAction.cancel, EnrollmentAction.resend])
def test_changes_after_review_began_say_so(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    refusal = enrollment_refusal(status, action)
    assert refusal is not None
    assert "review has begun" in refusal


@pytest.mark.parametrize(
    "status", [s for s in EnrollmentStatus if s not in ENROLLMENT_ALLOWED[EnrollmentAction.approve]]
)
def test_refusals_name_the_status_that_would_allow_it(status: EnrollmentStatus) -> None:
    refusal = enrollment_refusal(status, EnrollmentAction.approve)
    assert refusal is not None
    assert "In Review" in refusal


GARBLED = re.compile(r"\bthe \w+ this enrollment\b")


@pytest.mark.parametrize(
    "action", [EnrollmentAction.edit, EnrollmentAction.cancel, EnrollmentAction.approve, EnrollmentAction.reject]
)
@pytest.mark.parametrize("status", [EnrollmentStatus.cancelled, EnrollmentStatus.new])
def test_verb_refusals_read_as_english(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    refusal = enrollment_refusal(status, action)
    if refusal is not None:
        assert refusal.startswith(f"Cannot {action.value} this enrollment")
        assert not GARBLED.search(refusal)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (EnrollmentStatus.cancelled, EnrollmentAction.resend),
        (EnrollmentStatus.in_review, EnrollmentAction.resend),
        (EnrollmentStatus.new, EnrollmentAction.start_review),
        (EnrollmentStatus.approved, EnrollmentAction.start_review),
    ],
)
def test_noun_phrase_refusals_read_as_english(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    refusal = enrollment_refusal(status, action)
    assert refusal is not None
    assert not GARBLED.search(refusal), refusal


def test_open_and_final_statuses_partition_the_enrollment_statuses() -> None:
    assert set(EnrollmentStatus) == OPEN_STATUSES | FINAL_STATUSES
    assert not OPEN_STATUSES & FINAL_STATUSES
    # An Expired enrollment can be revived by a resend, so it still holds its organization name.
    assert EnrollmentStatus.expired in OPEN_STATUSES
    assert {EnrollmentStatus.approved, EnrollmentStatus.rejected, EnrollmentStatus.cancelled} == FINAL_STATUSES


def test_final_statuses_allow_nothing() -> None:
    for status in FINAL_STATUSES:
        assert [a for a in EnrollmentAction if enrollment_allows(status, a)] == []


@pytest.mark.parametrize(("status", "action"), ACCOUNT_PAIRS)
def test_account_action_is_allowed_exactly_per_design(status: AccountStatus, action: AccountAction) -> None:
    refusal = account_refusal(status, action)
    assert (refusal is None) is (status in ACCOUNT_ALLOWED[action])


@pytest.mark.parametrize(("status", "action"), ACCOUNT_PAIRS)
def test_every_account_refusal_is_a_sentence(status: AccountStatus, action: AccountAction) -> None:
    refusal = account_refusal(status, action)
    if refusal is None:
        return
    assert_sentence(refusal)
    assert status.value in refusal
    assert "member account" in refusal


def test_deleting_an_active_account_says_to_suspend_it_first() -> None:
    refusal = account_refusal(AccountStatus.active, AccountAction.delete)
    assert refusal is not None and "suspend it first" in refusal


def test_suspend_and_reactivate_go_back_and_forth() -> None:
    assert account_refusal(AccountStatus.active, AccountAction.suspend) is None
    assert account_refusal(AccountStatus.suspended, AccountAction.reactivate) is None
    assert account_refusal(AccountStatus.suspended, AccountAction.suspend) is not None
    assert account_refusal(AccountStatus.active, AccountAction.reactivate) is not None


def test_a_deleted_account_allows_nothing() -> None:
    assert all(account_refusal(AccountStatus.deleted, action) is not None for action in AccountAction)


@pytest.mark.parametrize("status", [AccountStatus.expired, AccountStatus.deleted])
def test_delete_refusal_advice_can_be_followed(status: AccountStatus) -> None:
    refusal = account_refusal(status, AccountAction.delete)
    assert refusal is not None
    if "suspend it first" in refusal:
        assert account_refusal(status, AccountAction.suspend) is None
