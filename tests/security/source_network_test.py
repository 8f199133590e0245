"""Limits and lock-outs count a source by its network where one owner has many addresses: an IPv6 /64."""

from __future__ import annotations

import pytest

from starter.portal.ratelimit import RateLimit
from starter.security import source_network


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("testclient", "testclient"),
        ("", ""),
        (None, None),
    ],
)
def test_an_ipv6_source_counts_as_its_64(address: str | None, counted_as: str | None) -> None:
    assert source_network(address) == counted_as


def test_rotating_through_a_64_does_not_escape_a_limit() -> None:
    limit = RateLimit(30, 60)
    answers = [limit.hit(source_network(f"2001:db8:1:2::{n:x}") or "") for n in range(1, 100)]
    assert answers[:30] == [None] * 30 and all(wait is not None for wait in answers[30:])
    assert limit.hit(source_network("2001:db8:1:3::1") or "") is None  # the next /64 is someone else
