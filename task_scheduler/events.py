"""Every state change as an event, on one in-process stream, fanned out to consumers.

The engine and the services :meth:`EventBus.publish` an :class:`Event`; in-process code
subscribes to :attr:`EventBus.stream` (a reactivex observable); each websocket client
reads its own bounded :class:`EventSubscription`.  Publishing never blocks and never
fails: a broken subscriber is logged and dropped, and a consumer too slow to keep up is
cut off (its subscription ends, marked overflowed) instead of holding events in memory
without bound.  A consumer that was cut off has missed events, so it should reconnect and
read the current state again through the REST API.

Threading: everything here runs on the event loop thread.  :meth:`EventBus.publish` wakes
asyncio consumers directly, so call it only from that thread (from another thread, use
``loop.call_soon_threadsafe(bus.publish, event)``).
"""

from __future__ import annotations

import asyncio
import copy
import enum
import json
import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from types import MappingProxyType
from typing import Any

import reactivex
from reactivex import abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable
from reactivex.subject import Subject

__all__ = ["Event", "EventBus", "EventSubscription", "EventType"]

logger = logging.getLogger(__name__)


class EventType(str, enum.Enum):
    """What happened; the value is the ``type`` clients see."""

    rule_created = "rule.created"
    rule_updated = "rule.updated"
    rule_deleted = "rule.deleted"
    rule_enabled = "rule.enabled"
    rule_disabled = "rule.disabled"
    rule_paused = "rule.paused"
    task_materialized = "task.materialized"
    task_dispatched = "task.dispatched"
    task_failed = "task.failed"
    task_missed = "task.missed"
    task_skipped = "task.skipped"
    task_updated = "task.updated"
    run_finished = "run.finished"


def _iso(instant: datetime) -> str:
    """UTC with a ``Z``, as the REST API writes times."""
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _jsonable(value: Any, where: Any) -> Any:
    """``value`` as plain JSON types; ``TypeError`` names the first part that has none.

    ``where`` is the path to ``value``: a name, then (parent, key) pairs, a list's index
    as a 1-tuple; it is spelled out only for the error. Plain dicts, lists, strings and
    integers, nearly all there is, are taken first."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {
            key if type(key) is str else str(key): _jsonable(item, (where, key))
            for key, item in value.items()
        }
    if kind is list:
        return [_jsonable(item, (where, (index,))) for index, item in enumerate(value)]
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{_spelled(where)}: {value} is not a JSON number")
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(
                f"{_spelled(where)}: naive datetime {value.isoformat()}; events carry aware times"
            )
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, (where, key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, (where, (index,))) for index, item in enumerate(value)]
    raise TypeError(f"{_spelled(where)}: {type(value).__name__} is not JSON data")


def _spelled(where: Any) -> str:
    """A path of :func:`_jsonable`'s as text: ``data.key[0].name``."""
    parts: list[str] = []
    while isinstance(where, tuple):
        where, step = where
        parts.append(f"[{step[0]}]" if isinstance(step, tuple) else f".{step}")
    return where + "".join(reversed(parts))


@dataclass(frozen=True)
class Event:
    """One state change.

    ``at`` must be timezone-aware and is kept in UTC.  ``channel`` is the rule's channel,
    which consumers filter on.  ``data`` is copied and checked to be JSON data
    (datetimes, dates and enums allowed) when the event is made, so a bad payload fails
    at the publisher, where the bug is, and never later in some subscriber.
    """

    type: EventType
    at: datetime
    rule_id: int | None = None
    task_id: str | None = None
    channel: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    replica: str | None = None
    """The replica the event happened on, when it is another than this one (relayed)."""
    _json_data: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"Event.at must be timezone-aware, got naive {self.at.isoformat()}")
        object.__setattr__(self, "type", EventType(self.type))
        object.__setattr__(self, "at", self.at.astimezone(timezone.utc))
        data = dict(self.data)
        object.__setattr__(self, "_json_data", _jsonable(data, "data"))
        object.__setattr__(self, "data", MappingProxyType(data))

    def to_json(self) -> dict[str, Any]:
        """The event as sent on the websocket; every key is always present."""
        return self._body(copy.deepcopy(self._json_data))

    def to_text(self) -> str:
        """``to_json()`` as JSON text (ASCII: as many bytes as characters), without the copy
        that protects the event's data."""
        return json.dumps(self._body(self._json_data), separators=(",", ":"))

    def _body(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "at": _iso(self.at),
            "rule_id": self.rule_id,
            "task_id": self.task_id,
            "channel": self.channel,
            "data": data,
            "replica": self.replica,
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any], replica: str) -> Event:
        """An event as another replica sent it (``to_json``), marked as that replica's."""
        return cls(
            type=EventType(body["type"]),
            at=datetime.fromisoformat(body["at"].replace("Z", "+00:00")),
            rule_id=body.get("rule_id"),
            task_id=body.get("task_id"),
            channel=body.get("channel"),
            data=body.get("data") or {},
            replica=replica,
        )


class EventBus:
    """In-process stream of events on a reactivex Subject.

    Use from the event loop thread only (see the module docstring).
    """

    def __init__(self) -> None:
        self._subject: Subject[Event] = Subject()
        self._closed = False
        self._stream: reactivex.Observable[Event] = reactivex.create(self._subscribe_guarded)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber, synchronously; never raises.

        A subscriber that raises (or whose pipeline ends in an error it does not handle)
        is logged and unsubscribed; the others still get the event.  After :meth:`close`
        events are dropped.
        """
        if self._closed:
            logger.debug("event bus closed; dropped %s", event.type.value)
            return
        try:
            self._subject.on_next(event)
        except Exception:  # the guards catch subscriber errors; this is the last resort
            logger.exception("publishing %s failed", event.type.value)

    @property
    def stream(self) -> reactivex.Observable[Event]:
        """Every event published from now on; completes when the bus closes.

        Each subscription is guarded: if its handler raises, the error is logged and that
        subscription alone is disposed.
        """
        return self._stream

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions to :attr:`stream` (websockets included), for metrics and tests."""
        return len(self._subject.observers)

    def subscribe_queue(self, *, channel: str | None = None, maxsize: int = 1000) -> EventSubscription:
        """A bounded async iterator of the events on ``channel`` (None: all) published from now on."""
        return EventSubscription(self.stream, channel=channel, maxsize=maxsize)

    def close(self) -> None:
        """Complete the stream: subscriptions end once they have drained.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._subject.on_completed()

    def _subscribe_guarded(
        self, observer: abc.ObserverBase[Event], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        holder = SingleAssignmentDisposable()

        def on_next(event: Event) -> None:
            try:
                observer.on_next(event)
            except Exception:
                logger.exception("event subscriber failed on %s; unsubscribing it", event.type.value)
                holder.dispose()

        def on_completed() -> None:
            try:
                observer.on_completed()
            except Exception:
                logger.exception("event subscriber failed on completion")

        holder.disposable = self._subject.subscribe(on_next, observer.on_error, on_completed)
        return holder


class EventSubscription:
    """One consumer's events, as an async iterator, filtered by channel (None: all).

    The buffer holds at most ``maxsize`` events.  When a consumer falls that far behind,
    the subscription is marked :attr:`overflowed`, its buffer is dropped and the
    iteration ends at once, so the consumer learns promptly that it has a gap; publishers
    are never blocked and memory stays bounded.  When the bus closes, the iteration ends
    after the buffered events (:attr:`completed`).  :meth:`close` ends it at once.
    """

    def __init__(self, stream: reactivex.Observable[Event], *, channel: str | None, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.channel = channel
        self.maxsize = maxsize
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        self._completed = False
        self._closed = False
        self._disposable: abc.DisposableBase = Disposable()
        self._disposable = stream.subscribe(on_next=self._on_event, on_completed=self._on_completed)

    @property
    def overflowed(self) -> bool:
        """True once the consumer fell ``maxsize`` events behind and was cut off."""
        return self._overflowed

    @property
    def completed(self) -> bool:
        """True once the bus has closed."""
        return self._completed

    def close(self) -> None:
        """Stop receiving; a pending ``__anext__`` ends.  Idempotent."""
        self._closed = True
        self._buffer.clear()
        self._disposable.dispose()
        self._ready.set()

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed or self._overflowed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            if self._completed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def _on_event(self, event: Event) -> None:
        if self._closed or self._overflowed:
            return
        if self.channel is not None and event.channel != self.channel:
            return
        if len(self._buffer) >= self.maxsize:
            logger.warning(
                "event consumer %d events behind (channel %s); cutting it off", self.maxsize, self.channel
            )
            self._overflowed = True
            self._buffer.clear()
            self._disposable.dispose()
        else:
            self._buffer.append(event)
        self._ready.set()

    def _on_completed(self) -> None:
        self._completed = True
        self._ready.set()
