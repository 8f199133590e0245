"""/api/tokens: one's own API tokens, created (for a current code from the second factor), listed and revoked.

Every signed-in user, staff or member administrator, manages its own tokens here and nobody else's: another
user's token id answers 404, exactly like one that does not exist. A token's secret is in the answer of the
POST that made it, and never again (only its hash is kept). The rules: `starter.services.tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, model_validator

from domain.models import FieldError
from starter.api.body import JsonBodyRoute
from starter.api.partners import PARTNER
from starter.api.responses import BODY_RESPONSES
from starter.api.schemas import Detail, refused
from starter.deps import CurrentUser, TokenServiceDep, actor_of
from starter.services.errors import InvalidInput
from starter.services.tokens import CODE_FORMAT, DEFAULT_DAYS, MAX_DAYS, MAX_LIVE_TOKENS, check_days, token_status
from store.tables import ApiToken

router = APIRouter(prefix="/api/tokens", tags=["tokens"], route_class=JsonBodyRoute)
PARTNERS = "Partners (reseller tokens) may call this."
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Detail}}


class TokenRequest(BaseModel):
    """The body of POST /api/tokens: the current code of one's second factor, and the token's lifetime. No
    other field."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = None
    """The 6-digit code the authenticator app shows now (required when the user has a second factor)."""
    expires_in_days: int = DEFAULT_DAYS
    """1 to 365 days."""

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        errors = []
        code = data.get("code")
        if code is not None and (not isinstance(code, str) or len(code) > 64):
            errors.append(FieldError(field="code", message=CODE_FORMAT))
        try:
            days = check_days(data.get("expires_in_days"))
        except InvalidInput as exc:
            errors.extend(exc.errors)
        if errors:
            raise refused(cls, errors)
        return {**data, "expires_in_days": days}


class TokenOut(BaseModel):
    """One of your API tokens: its id and dates, never the token itself. `status`: `Live`, `Expired` or
    `Revoked`."""

    id: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    """When it last authenticated a request (to the minute)."""
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            status=token_status(token),
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class NewTokenOut(TokenOut):
    """The token just made, with the token itself: shown this once (only its hash is kept)."""

    token: str


class TokenList(BaseModel):
    items: list[TokenOut]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NewTokenOut,
    responses={**BODY_RESPONSES, 403: {"model": Detail}, 409: {"model": Detail}},
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} A new API token of your own, which authenticates as you (your role, your
member account). With a second factor, send `code`, the 6-digit code your authenticator app shows now: it is
accepted once, a recovery code is not accepted, and wrong codes count like wrong passwords (five pause sign-in
for 15 minutes). Without one, 403 while the second factor is required. `expires_in_days`: 1 to {MAX_DAYS}
(default {DEFAULT_DAYS}). At most {MAX_LIVE_TOKENS} live tokens (409). The answer's `token` is shown this once.""",
)
async def create_token(body: TokenRequest, user: CurrentUser, service: TokenServiceDep) -> NewTokenOut:
    token, secret = await service.create(user, body.code, body.expires_in_days, actor_of(user))
    return NewTokenOut(**TokenOut.of(token).model_dump(), token=secret)


@router.get(
    "",
    response_model=TokenList,
    openapi_extra=PARTNER,
    description=f"{PARTNERS} Your API tokens, newest first: live, expired and revoked. Never the token itself.",
)
async def list_tokens(user: CurrentUser, service: TokenServiceDep) -> TokenList:
    return TokenList(items=[TokenOut.of(token) for token in await service.of(user)])


@router.delete(
    "/{token_id}",
    response_model=TokenOut,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} Revoke one of your API tokens: it stops working at once (the one making this
call too). Revoking it again changes nothing. Another user's token, like an unknown id, is 404.""",
)
async def revoke_token(token_id: str, user: CurrentUser, service: TokenServiceDep) -> TokenOut:
    return TokenOut.of(await service.revoke(user, token_id, actor_of(user)))
