"""API tokens of one's own: created for a current code from the second factor, listed, and revoked.

Any signed-in user (a member administrator or staff) manages its own tokens here, at `/me/tokens` and
`/api/tokens`; `enroll tokens …` and `/admin/users` manage anyone's. A token authenticates as its user: the same
role, the same member account, every scoped rule.

- **A current code.** A user with a second factor gives the 6-digit code its authenticator app shows now. It is
  accepted once (a replayed code is refused) and counted like a password against the user's email (five wrong
  ones pause sign-in for 15 minutes). A recovery code is not accepted: it is for signing in without the phone,
  not for minting credentials that outlive the session. A user without a second factor is refused while
  `ENROLL_SECOND_FACTOR=required` (set one up in the portal first); with `optional`, no code is asked.
- **Always an end.** A token made here expires after 1 to 365 days (90 unless asked), and a user has at most
  MAX_LIVE_TOKENS live ones. Only the token's hash is kept: it is shown once.
- **Own only.** Another user's token id is answered exactly like an id that does not exist.
"""

from __future__ import annotations

from datetime import timedelta

from domain.models import Actor, FieldError
from domain.settings import Settings
from starter.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from store import second_factor, users
from store.paging import now
from store.tables import ApiToken, User

DEFAULT_DAYS = 90
MAX_DAYS = 365
MAX_LIVE_TOKENS = 10
"""Live (not revoked, not expired) tokens one user may have: enough for each script or system to hold its own."""
CODE_REQUIRED = "is required: the 6-digit code your authenticator app shows now"
CODE_FORMAT = "must be the 6-digit code your authenticator app shows now (a recovery code is not accepted here)"
CODE_REFUSED = (
    "is not right or was already used, or sign-in is paused for 15 minutes after repeated failures: wait for a "
    "new code in your app and try again"
)
NO_SECOND_FACTOR = (
    "Creating an API token needs a second factor: sign in to the portal and set one up first (Your account)."
)
TOO_MANY = (
    f"You have {MAX_LIVE_TOKENS} live API tokens, the most one user may have: revoke one you no longer use first."
)
UNKNOWN_TOKEN = "You have no API token with the id {token_id}."  # noqa: S105 - a sentence, not a secret


class SecondFactorNeeded(ServiceError):
    """The rule that a token is created only with a second factor, for a user who has none while it is required."""

    status = 403


def check_days(value: object) -> int:
    """The token's lifetime in days: a whole number from 1 to MAX_DAYS; left out or empty, DEFAULT_DAYS."""
    if value is None or value == "":
        return DEFAULT_DAYS
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 3:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        message = f"must be a whole number of days from 1 to {MAX_DAYS}"
        raise InvalidInput([FieldError(field="expires_in_days", message=message)])
    return value


def needs_code(user: User) -> bool:
    return second_factor.has_second_factor(user)


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url

    async def create(self, user: User, code: str | None, days: int, by: Actor) -> tuple[ApiToken, str]:
        """A new token of `user` for a current code (see the module): its row, and the token, seen this once."""
        if not needs_code(user) and self.settings.second_factor == "required":
            raise SecondFactorNeeded(NO_SECOND_FACTOR)
        if sum(token_status(token) == "Live" for token in await self.of(user)) >= MAX_LIVE_TOKENS:
            raise Conflict(TOO_MANY)  # before a code is used up on a token that cannot be made
        if needs_code(user):
            await self._check_code(user, code or "", by)
        expires_at = now() + timedelta(days=check_days(days))
        try:
            return await users.issue_token(self.url, user, expires_at=expires_at, by=by, live_at_most=MAX_LIVE_TOKENS)
        except users.TooManyTokens as exc:
            raise Conflict(TOO_MANY) from exc

    async def _check_code(self, user: User, code: str, by: Actor) -> None:
        digits = "".join(code.split())
        if not code.strip():
            raise InvalidInput([FieldError(field="code", message=CODE_REQUIRED)])
        if len(digits) != 6 or not digits.isdigit():
            raise InvalidInput([FieldError(field="code", message=CODE_FORMAT)])
        if not await users.count_attempt(self.url, user.email, by.source):
            raise InvalidInput([FieldError(field="code", message=CODE_REFUSED)])
        # Six digits never match a recovery code (ten characters), so this accepts a TOTP code alone.
        if await second_factor.check_code(self.url, self.settings.signing_key, user.id, digits) != "totp":
            raise InvalidInput([FieldError(field="code", message=CODE_REFUSED)])
        await users.forgive(self.url, user.email, by.source)

    async def of(self, user: User) -> list[ApiToken]:
        """The user's own tokens, newest first (never their secret)."""
        return await users.tokens_of(self.url, user.id)

    async def get(self, user: User, token_id: str) -> ApiToken:
        """One of the user's own tokens; any other id is NotFound."""
        for token in await self.of(user):
            if token.id == token_id:
                return token
        raise NotFound(UNKNOWN_TOKEN.format(token_id=token_id[:64]))

    async def revoke(self, user: User, token_id: str, by: Actor) -> ApiToken:
        """Revoke one of the user's own tokens (it stops working at once; again, nothing changes)."""
        try:
            return await users.revoke_token(self.url, token_id[:64], by=by, owner_id=user.id)
        except users.UserError as exc:
            raise NotFound(UNKNOWN_TOKEN.format(token_id=token_id[:64])) from exc


def token_status(token: ApiToken) -> str:
    """Live, Expired or Revoked."""
    if token.revoked_at is not None:
        return "Revoked"
    if token.expires_at is not None and token.expires_at <= now():
        return "Expired"
    return "Live"
