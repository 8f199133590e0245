"""What the API and the portal do with a manufacturer's token secrets: upload a PSKC file (a batch, imported by
its CredentialImportWorkflow), follow the batch, read its report, list the inventory, assign credentials to a
customer, and check a code.

Who may do what is decided here, with `domain.access`: staff see every manufacturer's batches and credentials and
(with `credentials.manage`) upload for a manufacturer and assign; a manufacturer's administrator uploads to, and
sees, its own account alone; a customer's administrator sees and checks the credentials assigned to its account.
An account one may not see is the same 404 as one that does not exist.

No secret leaves this module: the file and its decryption input go to the store sealed, the views carry ids,
counts and reasons, and a credential's secret is unsealed inside `check` alone, to compute the codes it compares.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING

import pyotp
import pyotp.utils
from temporalio.client import Client
from temporalio.service import RPCError

from credentials.pskc import BatchRejected, check_file, parse_decryption
from domain.access import Permission, allows, may_see, may_see_credential, refusal
from domain.models import (
    AccountStatus,
    Actor,
    CredentialBatchStatus,
    CredentialImportProgress,
    CredentialState,
    FieldError,
    MemberType,
)
from domain.settings import Settings
from starter.services.errors import Conflict, InvalidInput, NotFound, ServiceError, Unavailable
from starter.services.temporal import unavailable_when_down
from store import accounts as account_store
from store import credentials as store
from store.credentials import BatchView, CredentialError, CredentialView, Rejection
from store.tables import User
from workflows.client import RPC_TIMEOUT
from workflows.credential_import import CredentialImportWorkflow, start_import
from workflows.names import credential_batch_workflow_id

if TYPE_CHECKING:
    from starter.portal.ratelimit import RateLimit

__all__ = [
    "BatchView",
    "CheckThrottled",
    "CredentialService",
    "CredentialView",
    "Forbidden",
    "Rejection",
]

log = logging.getLogger(__name__)

HOTP_LOOK_AHEAD = 10
"""HOTP: besides the next counter expected, the 10 after it are tried (a token pressed a few times unseen)."""
TOTP_STEPS = 1
"""TOTP: the current time step and one either side (clock drift, a code typed as its step ends)."""
CHECKS_PER_MINUTE = 10
"""Checks of one credential in a sliding minute, per API process; over it, 429 with Retry-After. With the HOTP
window of 11 codes, a guesser finds a 6-digit code about once in 9,000 minutes."""
NO_BATCH = "No credential batch of this account has the id {batch_id}."
NO_ACCOUNT = "No member account has the id {account_id}."
NO_CREDENTIAL = "No credential you may see has the id {credential_id}."
NOT_MANUFACTURER = (
    "Account {account_id} is a {member_type}'s member account: token secrets (PSKC files) are uploaded to a "
    "manufacturer's member account only."
)


class Forbidden(ServiceError):
    status = 403


class CheckThrottled(ServiceError):
    """Too many checks of one credential: `retry_after` whole seconds before the next is counted."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_check_limit: RateLimit | None = None


def check_limit() -> RateLimit:
    """This process's limit on checks per credential (keyed by the credential's id)."""
    global _check_limit
    if _check_limit is None:
        # Here, not at the top: importing the portal package imports its routes, which import this module.
        from starter.portal.ratelimit import RateLimit

        _check_limit = RateLimit(CHECKS_PER_MINUTE, 60)
    return _check_limit


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput([FieldError(field=field, message=message)])


def verify_code(material: store.CheckMaterial, code: str, *, at: float | None = None) -> tuple[str, int] | None:
    """The counter ("counter", n) or time step ("step", n) at which `code` is the credential's code, later than
    the last one accepted; None if it is not. pyotp computes the codes; they are compared in constant time."""
    view = material.view
    if len(code) != view.digits:
        return None
    secret = base64.b32encode(material.secret).decode()
    if view.algorithm == "HOTP":
        hotp = pyotp.HOTP(secret, digits=view.digits)
        first = material.last_counter + 1 if material.last_counter is not None else (view.counter or 0)
        for counter in range(first, first + HOTP_LOOK_AHEAD + 1):
            if pyotp.utils.strings_equal(hotp.at(counter), code):
                return "counter", counter
        return None
    if view.algorithm == "TOTP":
        period = view.period or 30
        totp = pyotp.TOTP(secret, digits=view.digits, interval=period)
        current = int(time.time() if at is None else at) // period
        for step in range(current - TOTP_STEPS, current + TOTP_STEPS + 1):
            if material.last_step is not None and step <= material.last_step:
                continue
            if pyotp.utils.strings_equal(totp.generate_otp(step), code):
                return "step", step
        return None
    return None


class CredentialService:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.effective_database_url

    # --- accounts and batches ---------------------------------------------------------------------------------

    async def _account(self, viewer: User, account_id: str) -> MemberType:
        """The account's member type, if `viewer` may see the account and its credentials; else 404."""
        account = await account_store.get_account(self.url, account_id[:64])
        if account is None or not may_see(viewer, account):
            raise NotFound(NO_ACCOUNT.format(account_id=account_id[:64]))
        if not allows(viewer.role, Permission.credentials_read):
            raise Forbidden(refusal(viewer.role, Permission.credentials_read))
        return account.member_type

    async def _manufacturer(self, viewer: User, account_id: str) -> None:
        """404 unless `viewer` may see the account; 403 unless it is a manufacturer's."""
        member_type = await self._account(viewer, account_id)
        if member_type != MemberType.manufacturer:
            raise Forbidden(NOT_MANUFACTURER.format(account_id=account_id, member_type=member_type.value))

    async def upload(
        self,
        viewer: User,
        account_id: str,
        *,
        data: bytes,
        filename: str | None,
        preshared_key: str | None,
        passphrase: str | None,
        actor: Actor,
    ) -> BatchView:
        """A new batch for the PSKC file `data` (or the batch the same file made before), its import started.
        The file is checked before anything is kept: its size, hostile XML, that it is PSKC (422 on `file`)."""
        account = await account_store.get_account(self.url, account_id[:64])
        if account is None or not may_see(viewer, account):
            raise NotFound(NO_ACCOUNT.format(account_id=account_id[:64]))
        if not allows(viewer.role, Permission.credentials_upload):
            raise Forbidden(refusal(viewer.role, Permission.credentials_upload))
        if account.member_type != MemberType.manufacturer:
            raise Forbidden(NOT_MANUFACTURER.format(account_id=account.id, member_type=account.member_type.value))
        if account.status != AccountStatus.active:
            raise Conflict(f"Account {account.id} is {account.status.value}: it may not upload token secrets.")
        if (missing := self.settings.missing_secrets_key()) is not None:
            raise Unavailable(missing)
        keys = self.settings.secrets_keys
        assert keys is not None
        try:
            key, phrase = parse_decryption(preshared_key, passphrase)
        except ValueError as err:
            field, _, message = str(err).partition(": ")
            raise _invalid(field, message) from None
        try:
            check_file(data, max_bytes=self.settings.pskc_max_bytes)
        except BatchRejected as rejected:
            raise _invalid("file", rejected.reason) from None
        try:
            batch, created = await store.create_batch(
                self.url,
                keys,
                account_id=account.id,
                data=data,
                filename=filename,
                preshared_key=key,
                passphrase=phrase,
                by=actor,
            )
        except CredentialError as err:
            raise _invalid(err.field, err.message) from None
        if batch.status == CredentialBatchStatus.importing:
            # Also for the same file again: a crash between the store and the start left it without a run.
            with unavailable_when_down():
                await start_import(self.client, batch.id, self.settings.task_queue)
        log.info(
            "credential batch %s %s for account %s (%d bytes)",
            batch.id,
            "uploaded" if created else "answered again",
            account.id,
            batch.size,
        )
        return batch

    async def batch(self, viewer: User, account_id: str, batch_id: str) -> BatchView:
        await self._manufacturer_or_404(viewer, account_id)
        found = await store.get_batch(self.url, batch_id[:64], account_id=account_id)
        if found is None:
            raise NotFound(NO_BATCH.format(batch_id=batch_id[:64]))
        return found

    async def _manufacturer_or_404(self, viewer: User, account_id: str) -> None:
        """Batches are a manufacturer's: any other account has none (404), and a customer's administrator sees
        none (its credentials come from the manufacturers' batches, not its own)."""
        member_type = await self._account(viewer, account_id)
        if member_type != MemberType.manufacturer:
            raise NotFound(f"Account {account_id} is not a manufacturer's: it has no credential batches.")

    async def progress(self, viewer: User, account_id: str, batch_id: str) -> CredentialImportProgress:
        """The batch's progress: its workflow's `progress` query while it imports; the store's figures once it
        has ended, or when Temporal does not answer."""
        found = await self.batch(viewer, account_id, batch_id)
        stored = CredentialImportProgress(processed=found.processed, total=found.total, status=found.status)
        if found.status != CredentialBatchStatus.importing:
            return stored
        handle = self.client.get_workflow_handle_for(
            CredentialImportWorkflow.run, credential_batch_workflow_id(found.id)
        )
        try:
            with unavailable_when_down():
                answer = await handle.query(CredentialImportWorkflow.progress, rpc_timeout=RPC_TIMEOUT)
        except (Unavailable, RPCError, TimeoutError) as err:
            log.info("credential batch %s: progress from the store (%s)", found.id, type(err).__name__)
            return stored
        if answer.processed < stored.processed:  # the store is ahead of a run that continued as new
            return stored
        return answer

    async def batches(self, viewer: User, account_id: str) -> list[BatchView]:
        await self._manufacturer_or_404(viewer, account_id)
        return await store.list_batches(self.url, account_id)

    async def rejections(self, viewer: User, account_id: str, batch_id: str) -> list[Rejection]:
        found = await self.batch(viewer, account_id, batch_id)
        return await store.batch_rejections(self.url, found.id)

    # --- the inventory ------------------------------------------------------------------------------------------

    async def credentials(
        self,
        viewer: User,
        account_id: str,
        *,
        q: str | None,
        state: CredentialState | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[CredentialView], str | None]:
        """A manufacturer's account: the credentials it imported. A customer's: those assigned to it."""
        member_type = await self._account(viewer, account_id)
        if member_type == MemberType.manufacturer:
            return await store.list_credentials(
                self.url, account_id=account_id, q=q, state=state, limit=limit, cursor=cursor
            )
        if member_type == MemberType.customer:
            return await store.list_credentials(
                self.url, assigned_account_id=account_id, q=q, state=state, limit=limit, cursor=cursor
            )
        raise NotFound(f"Account {account_id} is a reseller's: it holds no credentials.")

    async def assign(
        self,
        viewer: User,
        manufacturer_account_id: str,
        *,
        customer_account_id: str,
        count: int | None,
        ids: list[str] | None,
        actor: Actor,
    ) -> list[CredentialView]:
        """Assign Available credentials of the manufacturer to a customer's account (staff with
        `credentials.manage`): `count` of them, first imported first, or those of `ids`. All or nothing."""
        if not allows(viewer.role, Permission.credentials_manage):
            raise Forbidden(refusal(viewer.role, Permission.credentials_manage))
        await self._manufacturer(viewer, manufacturer_account_id)
        try:
            return await store.assign_credentials(
                self.url,
                customer_account_id=customer_account_id[:64],
                by=actor,
                count=count,
                ids=ids,
                manufacturer_account_id=manufacturer_account_id,
            )
        except CredentialError as err:
            raise _invalid(err.field, err.message) from None

    # --- the check ----------------------------------------------------------------------------------------------

    async def _visible_credential(self, viewer: User, credential_id: str) -> CredentialView:
        """The credential by its id or, failing that, by its serial (the id a manufacturer's file gave it),
        among those `viewer` may check: staff any; a manufacturer's administrator its own; a customer's those
        assigned to it. Anything else is the same 404."""
        wanted = credential_id.strip()[:128]
        if not allows(viewer.role, Permission.credentials_read):
            raise Forbidden(refusal(viewer.role, Permission.credentials_read))
        found = await store.get_credential(self.url, wanted[:32]) if len(wanted) <= 32 else None
        if found is not None and may_see_credential(viewer, found.account_id, found.assigned_account_id):
            return found
        candidates = [
            c
            for c in await store.credentials_by_serial(self.url, wanted)
            if may_see_credential(viewer, c.account_id, c.assigned_account_id)
        ]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise _invalid(
                "credential_id",
                "more than one manufacturer has a credential with this serial; give the credential's id "
                "(the inventory's `id`) instead",
            )
        raise NotFound(NO_CREDENTIAL.format(credential_id=wanted))

    async def check(self, viewer: User, credential_id: str, code: str) -> bool:
        """Whether `code` is a code of the credential not accepted before: HOTP at the next counter or up to
        HOTP_LOOK_AHEAD after it (the counter then moves past it), TOTP at the current time step ±1. Each code is
        accepted once, even by two checks at the same moment (a conditional UPDATE in the store). A Disabled
        credential checks invalid. Throttled per credential (CheckThrottled, 429)."""
        code = code.strip().replace(" ", "")
        if not code.isdigit() or not 6 <= len(code) <= 8 or not code.isascii():
            raise _invalid("code", "must be the token's code: 6 or 8 digits")
        credential = await self._visible_credential(viewer, credential_id)
        wait = check_limit().hit(credential.id)
        if wait is not None:
            raise CheckThrottled(
                f"Credential {credential.serial} was checked {CHECKS_PER_MINUTE} times within a minute, its "
                f"limit. Wait {wait} s and try again.",
                wait,
            )
        if credential.state == CredentialState.disabled:
            return False
        keys = self.settings.secrets_keys
        if keys is None:
            raise Unavailable(self.settings.missing_secrets_key() or "ENROLL_SECRETS_KEY is not set.")
        material = await store.check_material(self.url, keys, credential.id)
        if material is None:
            raise NotFound(NO_CREDENTIAL.format(credential_id=credential_id[:128]))
        matched = verify_code(material, code)
        if matched is None:
            valid = False
        elif matched[0] == "counter":
            valid = await store.accept_counter(self.url, credential.id, matched[1])
        else:
            valid = await store.accept_step(self.url, credential.id, matched[1])
        log.info("credential %s checked: %s", credential.id, "valid" if valid else "invalid")
        return valid
