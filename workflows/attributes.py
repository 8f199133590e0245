"""Typed search attribute keys of DESIGN.md's "Temporal names"; none of them carries personal data."""

from temporalio.common import SearchAttributeKey

ENROLLMENT_STATUS = SearchAttributeKey.for_keyword("EnrollmentStatus")
MEMBER_TYPE = SearchAttributeKey.for_keyword("MemberType")
REMINDER_COUNT = SearchAttributeKey.for_int("ReminderCount")
FORM_DUE_AT = SearchAttributeKey.for_datetime("FormDueAt")
ACCOUNT_STATUS = SearchAttributeKey.for_keyword("AccountStatus")
SERVICE_END_DATE = SearchAttributeKey.for_datetime("ServiceEndDate")
