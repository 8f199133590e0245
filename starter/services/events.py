"""Reading events (`GET /api/events`): the viewer's scope, the types asked for, and the opaque cursor.

Who may read them is `domain.access`' (`events.read`: admins, and resellers); what they see is `event_scope`'s
(an admin every event, a reseller its customers'). The cursor is the seq of the last event a page held, encoded
(store/events.py); every page answers one, the same one again when nothing new has come, so a client polls with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.access import Viewer, event_scope
from domain.models import FieldError
from domain.settings import Settings
from domain.webhooks import EventType
from starter.services.errors import InvalidInput
from store import events as store
from store.events import StoredEvent
from store.paging import BadCursor

KNOWN_TYPES = frozenset(t.value for t in EventType)


@dataclass(frozen=True)
class EventPage:
    items: list[StoredEvent]
    next_cursor: str


def event_types(values: Sequence[str] | None) -> list[str] | None:
    """The types asked for (`type` repeated, or comma-separated), in the order first asked; None for every type.
    InvalidInput naming `type` for one that is not an event type."""
    if not values:
        return None
    asked = [part.strip() for value in values for part in value.split(",") if part.strip()]
    unknown = [t for t in asked if t not in KNOWN_TYPES]
    if unknown:
        raise InvalidInput(
            [FieldError(field="type", message=f"unknown event type {unknown[0][:64]!r}: one of {', '.join(EventType)}")]
        )
    return list(dict.fromkeys(asked)) or None


def position(cursor: str | None) -> int | None:
    """The seq a cursor resumes after (None: from the oldest kept); InvalidInput naming `after` for a cursor this
    API did not hand out."""
    if not cursor:
        return None
    try:
        return store.decode_event_cursor(cursor)
    except BadCursor as exc:
        raise InvalidInput([FieldError(field="after", message=str(exc))]) from None


class EventService:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url

    async def page(self, viewer: Viewer, *, after: str | None, types: Sequence[str] | None, limit: int) -> EventPage:
        """The events after `after` that `viewer` may see, oldest first, and the cursor to ask with next."""
        kinds = event_types(types)
        start = position(after)
        items, last = await store.list_events(
            self.url, after=start, types=kinds, reseller_account_id=event_scope(viewer), limit=limit
        )
        next_cursor = store.encode_event_cursor(last) if items or not after else after
        return EventPage(items=items, next_cursor=next_cursor)
