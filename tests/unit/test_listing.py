"""The listing's cursor and the cache of each rule's next occurrence (pure values)."""

from datetime import datetime, timedelta, timezone

import pytest

from task_scheduler.domain.listing import (
    Cursor,
    HeadCache,
    Position,
    TaskQuery,
    decode_cursor,
    differing_filters,
    encode_cursor,
)

T = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
QUERY = TaskQuery(start=T, end=T + timedelta(days=30), rule_id=7, status="scheduled", category="clean")


def test_a_cursor_round_trips_and_names_what_differs() -> None:
    cursor = Cursor(QUERY, Position(T + timedelta(hours=1), "7-20260105T130000Z"))
    token = encode_cursor(cursor)
    assert token.isascii() and "=" not in token
    assert decode_cursor(token) == cursor
    assert differing_filters(QUERY, {"start": None, "rule_id": 7, "kind": None}) == []
    assert differing_filters(QUERY, {"end": T, "status": "skipped", "kind": "http"}) == [
        "end",
        "status",
        "kind",
    ]


@pytest.mark.parametrize(
    "token",
    ["", "x", "W10", "WzIsIjIwMjYiXQ", encode_cursor(Cursor(QUERY, Position(T, "a")))[:-3], "\u00e9"],
)
def test_anything_else_is_not_a_cursor(token: str) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        decode_cursor(token)


def test_a_cursor_with_a_naive_time_is_refused() -> None:
    token = encode_cursor(Cursor(QUERY, Position(T.replace(tzinfo=None), "a")))
    with pytest.raises(ValueError, match="not a cursor"):
        decode_cursor(token)


def hours(n: float) -> datetime:
    return T + timedelta(hours=n)


def test_a_head_answers_from_where_it_was_found_up_to_itself() -> None:
    heads = HeadCache(10)
    heads.put(1, "v1", hours(0), hours(5), hours(100))
    assert heads.get(1, "v1", hours(0), hours(100)) == hours(5)
    assert heads.get(1, "v1", hours(5), hours(100)) == hours(5)
    assert heads.get(1, "v1", hours(3), hours(5)) is None  # found, but at or after this end
    assert heads.get(1, "v1", hours(3), hours(6)) == hours(5)
    for unknown in (
        heads.get(1, "v1", hours(-1), hours(100)),  # before where it was looked for
        heads.get(1, "v1", hours(5.5), hours(100)),  # past the head
        heads.get(1, "v2", hours(1), hours(100)),  # the rule changed
        heads.get(2, "v1", hours(1), hours(100)),  # another rule
    ):
        assert unknown is HeadCache.UNKNOWN


def test_no_head_answers_up_to_where_it_was_looked_for() -> None:
    heads = HeadCache(10)
    heads.put(1, "v1", hours(0), None, hours(10))
    assert heads.get(1, "v1", hours(2), hours(10)) is None
    assert heads.get(1, "v1", hours(9), hours(3)) is None
    assert heads.get(1, "v1", hours(2), hours(11)) is HeadCache.UNKNOWN


def test_a_full_cache_starts_afresh() -> None:
    heads = HeadCache(2)
    heads.put(1, "v", hours(0), hours(1), hours(9))
    heads.put(2, "v", hours(0), hours(1), hours(9))
    heads.put(2, "v", hours(0), hours(2), hours(9))  # replacing one keeps the others
    assert heads.get(1, "v", hours(0), hours(9)) == hours(1)
    heads.put(3, "v", hours(0), hours(3), hours(9))
    assert heads.get(1, "v", hours(0), hours(9)) is HeadCache.UNKNOWN
    assert heads.get(3, "v", hours(0), hours(9)) == hours(3)
