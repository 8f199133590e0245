"""/api/events: every state change, oldest first, for a system that keeps in step by polling (webhook endpoints
push the same events)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from domain.access import Permission
from domain.webhooks import EventType
from starter.api.partners import PARTNER
from starter.api.schemas import Detail, ErrorList
from starter.deps import SettingsDep, require
from starter.services.events import EventService
from store.tables import User

router = APIRouter(prefix="/api", tags=["events"])
EventReader = Annotated[User, require(Permission.events_read)]


async def get_event_service(settings: SettingsDep) -> EventService:
    return EventService(settings)


EventServiceDep = Annotated[EventService, Depends(get_event_service)]


class EventOut(BaseModel):
    id: str
    """Stable: the same event always has the same id (`evt_…`), in this list and in every webhook delivery."""
    type: EventType
    created_at: datetime
    """When the change happened."""
    data: dict[str, Any]
    """The record as the API shows it after the change (an enrollment or account without its timeline, an
    administrator, a credential batch): never a token, a secret or a form link."""


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str
    """Always given: ask with it (`after`) for what comes next. The same cursor again when nothing new has come."""


@router.get(
    "/events",
    response_model=EventPage,
    responses={403: {"model": Detail}, 422: {"model": ErrorList}},
    openapi_extra=PARTNER,
)
async def list_events(
    user: EventReader,
    service: EventServiceDep,
    after: Annotated[str | None, Query(max_length=200, description="the `next_cursor` of the page before")] = None,
    type_: Annotated[
        list[str] | None,
        Query(alias="type", max_length=50, description="event types, repeated or comma-separated; all if none"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> EventPage:
    """Partners (reseller tokens) may call this: their customers' events only. Admins see every event.

    The events after the cursor `after` (from the oldest kept, `ENROLL_EVENTS_RETENTION`, without one), oldest
    first, of the types asked for. Poll with `next_cursor`: an event is never skipped, nor listed twice."""
    page = await service.page(user, after=after, types=type_, limit=limit)
    return EventPage(
        items=[EventOut(id=e.id, type=EventType(e.type), created_at=e.created_at, data=e.data) for e in page.items],
        next_cursor=page.next_cursor,
    )
