"""Retention's pruning, on SQLite and PostgreSQL: exactly the rows past the cut go, in bounded batches; emails on
their way, live links, counters still counting and the audit trail stay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store import retention
from store.db import transaction
from store.tables import FormLink, OutboxEmail, SignInThrottle, TimelineEntry, User, UserLink

RETENTION = timedelta(days=400)
OLD = timedelta(days=500)
RECENT = timedelta(days=10)


async def seed(url: str) -> dict[str, set[str]]:
    """Old and recent rows of every kind retention prunes; answers the keys that must be KEPT, by table."""
    now = datetime.now(UTC)
    old, recent, future = now - OLD, now - RECENT, now + timedelta(days=1)
    kept: dict[str, set[str]] = {"outbox": set(), "form_links": set(), "user_links": set(), "sign_in_throttle": set()}

    def email(key: str, state: str, created: datetime, sent: datetime | None, event: datetime | None) -> OutboxEmail:
        return OutboxEmail(
            key=key,
            enrollment_id="e-retention",
            kind="invitation",
            recipients="pat@acme.example",
            subject="Your enrollment",
            message_id=f"<{key}@test>",
            state=state,
            created_at=created,
            sent_at=sent,
            event_at=event,
        )

    async with transaction(url) as session:
        session.add(
            User(id="u-retention", email="admin@acme.example", role="customer", password_hash="", created_at=old)
        )
        await session.flush()
        for state in retention.PRUNABLE_EMAIL_STATES:
            session.add(email(f"old-{state}", state, old, old if state != "dropped" else None, None))
        for state in ("sending", "retrying"):
            session.add(email(f"old-{state}", state, old, None, None))
            kept["outbox"].add(f"old-{state}")
        session.add(email("old-but-reported-lately", "bounced", old, old, recent))
        session.add(email("recent-sent", "sent", recent, recent, None))
        kept["outbox"] |= {"old-but-reported-lately", "recent-sent"}

        def link(key: str, created: datetime, dead: datetime | None) -> FormLink:
            return FormLink(token_hash=key, enrollment_id="e-retention", version=1, created_at=created, dead_at=dead)

        session.add_all(
            [link("fl-old-dead", old, old), link("fl-recent-dead", old, recent), link("fl-live", old, None)]
        )
        kept["form_links"] |= {"fl-recent-dead", "fl-live"}

        def user_link(
            key: str, expires: datetime, used: datetime | None = None, dead: datetime | None = None
        ) -> UserLink:
            return UserLink(
                token_hash=key,
                user_id="u-retention",
                purpose="activation",
                created_at=old,
                expires_at=expires,
                used_at=used,
                dead_at=dead,
            )

        session.add_all(
            [
                user_link("ul-old-used", future, used=old),
                user_link("ul-old-dead", future, dead=old),
                user_link("ul-old-expired", old),
                user_link("ul-recent-used", future, used=recent),
                user_link("ul-recent-expired", recent),
                user_link("ul-live", future),
            ]
        )
        kept["user_links"] |= {"ul-recent-used", "ul-recent-expired", "ul-live"}

        two_days = now - timedelta(days=2)
        session.add_all(
            [
                SignInThrottle(key="st-over", failures=3, window_started_at=two_days, locked_until=None),
                SignInThrottle(key="st-lock-over", failures=9, window_started_at=two_days, locked_until=two_days),
                SignInThrottle(key="st-still-locked", failures=9, window_started_at=two_days, locked_until=future),
                SignInThrottle(key="st-counting", failures=1, window_started_at=now - timedelta(hours=1)),
            ]
        )
        kept["sign_in_throttle"] |= {"st-still-locked", "st-counting"}
        session.add(
            TimelineEntry(key="t-retention", enrollment_id="e-retention", at=old, event="invitation sent", actor="x")
        )
    return kept


async def remaining(url: str) -> dict[str, set[str]]:
    async with transaction(url) as session:
        return {
            "outbox": set(await session.scalars(select(OutboxEmail.key))),
            "form_links": set(await session.scalars(select(FormLink.token_hash))),
            "user_links": set(await session.scalars(select(UserLink.token_hash))),
            "sign_in_throttle": set(await session.scalars(select(SignInThrottle.key))),
        }


async def timeline_kept(url: str) -> bool:
    async with transaction(url) as session:
        found = await session.scalar(select(TimelineEntry.key).where(TimelineEntry.key == "t-retention"))
        return found is not None


async def prune_in_batches(prune: Callable[[str, datetime, int], Awaitable[int]], url: str, before: datetime) -> int:
    """As the activity does: batch after batch until one comes back short."""
    deleted = 0
    while True:
        batch = await prune(url, before, 2)
        assert batch <= 2
        deleted += batch
        if batch < 2:
            return deleted


async def test_exactly_the_rows_past_the_cut_are_pruned_in_batches(database_url: str) -> None:
    kept = await seed(database_url)
    now = datetime.now(UTC)
    cut, throttle_cut = now - RETENTION, now - timedelta(days=1)
    assert await prune_in_batches(retention.prune_outbox, database_url, cut) == len(retention.PRUNABLE_EMAIL_STATES)
    assert await prune_in_batches(retention.prune_form_links, database_url, cut) == 1
    assert await prune_in_batches(retention.prune_user_links, database_url, cut) == 3
    assert await prune_in_batches(retention.prune_sign_in_throttle, database_url, throttle_cut) == 2
    assert await remaining(database_url) == kept
    assert await timeline_kept(database_url)


async def test_pruning_again_deletes_nothing(database_url: str) -> None:
    kept = await seed(database_url)
    cut = datetime.now(UTC) - RETENTION
    for prune in (retention.prune_outbox, retention.prune_form_links, retention.prune_user_links):
        await prune_in_batches(prune, database_url, cut)
        assert await prune(database_url, cut, 1000) == 0
    assert {k: v for k, v in (await remaining(database_url)).items() if k != "sign_in_throttle"} == {
        k: v for k, v in kept.items() if k != "sign_in_throttle"
    }
