"""A task listing's window, filters and paging cursor: pure values, no storage.

A listing orders occurrences by (scheduled time, id).  A cursor names the last item a
page returned, with the window and filters it was made for, so the next page starts
strictly after that item whatever was added or removed meanwhile.  It is opaque to
clients: URL-safe base64 of a small JSON array.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, fields
from datetime import datetime

_VERSION = 1


@dataclass(frozen=True)
class TaskQuery:
    """Which occurrences a listing holds: scheduled in [start, end) and matching every filter."""

    start: datetime
    end: datetime
    rule_id: int | None = None
    status: str | None = None
    category: str | None = None
    kind: str | None = None


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sits in a listing: by time, then id."""

    at: datetime
    id: str


@dataclass(frozen=True)
class Cursor:
    query: TaskQuery
    after: Position


def encode_cursor(cursor: Cursor) -> str:
    query = cursor.query
    values = [
        _VERSION,
        cursor.after.at.isoformat(),
        cursor.after.id,
        query.start.isoformat(),
        query.end.isoformat(),
        query.rule_id,
        query.status,
        query.category,
        query.kind,
    ]
    text = json.dumps(values, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor a token stands for; ValueError if it is not one this service made."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, at, item_id, start, end, rule_id, status, category, kind = json.loads(text)
        if version != _VERSION or not isinstance(item_id, str):
            raise ValueError
        for value in (rule_id, status, category, kind):
            if value is not None and not isinstance(value, (int, str)):
                raise ValueError
        query = TaskQuery(
            start=_aware(start), end=_aware(end), rule_id=rule_id, status=status, category=category, kind=kind
        )
        return Cursor(query=query, after=Position(_aware(at), item_id))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise ValueError("not a cursor from this listing; use the `next` value of a page as it is") from None


def _aware(text: object) -> datetime:
    value = datetime.fromisoformat(text)  # type: ignore[arg-type]
    if value.tzinfo is None:
        raise ValueError
    return value


def differing_filters(made_for: TaskQuery, given: dict[str, object]) -> list[str]:
    """Names of the filters given with a cursor that differ from the ones it was made for;
    a filter left out (None) takes the cursor's."""
    return [
        field.name
        for field in fields(TaskQuery)
        if given.get(field.name) is not None and given[field.name] != getattr(made_for, field.name)
    ]


@dataclass(frozen=True, slots=True)
class _Head:
    version: object
    since: datetime
    head: datetime | None
    until: datetime


_UNKNOWN = object()


class HeadCache:
    """Each rule's first occurrence at or after some instant, as last computed.

    An entry says: the rule (at ``version``) has no occurrence in [since, head), and ``head``
    is one; or, head None, none in [since, until).  So it also answers for any later instant
    up to the head, which is what paging forward and asking the same page again look up.
    Entries are a few hundred bytes; past ``size`` rules the cache starts afresh.
    """

    UNKNOWN = _UNKNOWN

    def __init__(self, size: int) -> None:
        self._size = size
        self._heads: dict[int, _Head] = {}

    def get(self, rule_id: int, version: object, at: datetime, until: datetime) -> datetime | object | None:
        """The first occurrence in [at, until), None if there is none, or UNKNOWN."""
        entry = self._heads.get(rule_id)
        if entry is None or entry.version != version or at < entry.since:
            return _UNKNOWN
        if entry.head is not None:
            if at > entry.head:
                return _UNKNOWN
            return entry.head if entry.head < until else None
        return None if until <= entry.until else _UNKNOWN

    def forget(self, rule_id: int) -> None:
        self._heads.pop(rule_id, None)

    def put(
        self, rule_id: int, version: object, at: datetime, head: datetime | None, until: datetime
    ) -> None:
        if len(self._heads) >= self._size and rule_id not in self._heads:
            self._heads.clear()
        self._heads[rule_id] = _Head(version, at, head, until)
