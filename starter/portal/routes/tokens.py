"""/me/tokens: your own API tokens. Create one for a current code from your second factor (it is shown once),
see when each was made, last used and ends, and revoke one after a page that asks first.

Every signed-in user has this page, for its own tokens alone; another user's token id is answered like one that
does not exist. The rules (the code, the lifetime, the most live tokens): `starter.services.tokens`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.settings import Settings
from starter.deps import SettingsDep, TokenServiceDep, actor_of
from starter.portal.common import PortalRoute, form_text, page, redirect
from starter.portal.session import PortalUser
from starter.services.errors import Conflict, InvalidInput
from starter.services.tokens import (
    DEFAULT_DAYS,
    MAX_LIVE_TOKENS,
    TokenService,
    check_days,
    needs_code,
    token_status,
)
from store.tables import User

router = APIRouter(prefix="/me/tokens", include_in_schema=False, route_class=PortalRoute)
LIFETIMES = [(30, "30 days"), (90, "90 days"), (180, "180 days"), (365, "1 year")]
LABELS = {"code": "Current code", "expires_in_days": "Expires after"}
DONE = {"revoked": "The token is revoked: it stops working at once."}


async def _tokens_page(
    request: Request,
    settings: Settings,
    service: TokenService,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    tokens = await service.of(user)
    context = {
        "tokens": [(token, token_status(token)) for token in tokens],
        "live": sum(1 for token in tokens if token_status(token) == "Live"),
        "most": MAX_LIVE_TOKENS,
        "lifetimes": LIFETIMES,
        "needs_code": needs_code(user),
        "values": values or {"expires_in_days": str(DEFAULT_DAYS)},
        "errors": errors or {},
        "field_labels": LABELS,
        "problem": problem,
        "message": None if errors or problem else DONE.get(request.query_params.get("done", "")),
        "api_url": settings.public_url.rstrip("/"),
    }
    return page(request, "portal/me_tokens.html", context, status_code=status)


@router.get("", response_class=HTMLResponse)
async def tokens(request: Request, user: PortalUser, settings: SettingsDep, service: TokenServiceDep) -> Response:
    return await _tokens_page(request, settings, service, user)


@router.post("", response_class=HTMLResponse)
async def create(request: Request, user: PortalUser, settings: SettingsDep, service: TokenServiceDep) -> Response:
    """A new token for a current code: the page that shows it, once (a reload cannot show it again: the code
    it was posted with is used up)."""
    form = await request.form()
    days_sent = (form_text(form, "expires_in_days") or "")[:8]
    values = {"expires_in_days": days_sent}
    try:
        days = check_days(days_sent)
        token, secret = await service.create(user, (form_text(form, "code") or "")[:64], days, actor_of(user))
    except InvalidInput as exc:
        errors = {error.field: error.message for error in exc.errors}
        return await _tokens_page(request, settings, service, user, values=values, errors=errors, status=422)
    except Conflict as exc:
        return await _tokens_page(request, settings, service, user, values=values, problem=exc.message, status=409)
    context = {"token": token, "secret": secret, "api_url": settings.public_url.rstrip("/")}
    return page(request, "portal/me_token_new.html", context)


@router.get("/{token_id:record}/revoke", response_class=HTMLResponse)
async def revoke_form(request: Request, token_id: str, user: PortalUser, service: TokenServiceDep) -> Response:
    token = await service.get(user, token_id)
    return page(request, "portal/me_token_revoke.html", {"token": token, "status": token_status(token)})


@router.post("/{token_id:record}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, token_id: str, user: PortalUser, service: TokenServiceDep) -> Response:
    await service.revoke(user, token_id, actor_of(user))
    return redirect("/me/tokens?done=revoked")
