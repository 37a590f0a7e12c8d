"""Tell the other replicas that rules or tasks changed, and what happened; hear theirs.

On PostgreSQL this is LISTEN/NOTIFY on one dedicated connection: a change on replica A
wakes the dispatcher of replica B within milliseconds instead of at its next poll, and
every event of A (a task dispatched, a run finished) reaches the ``/events`` clients of B.
Announcements are coalesced (one NOTIFY per burst of changes, events packed several to a
NOTIFY) and sent off the request path.  SQLite serves a single process, and on
MySQL/MariaDB replicas rely on the dispatcher's poll and each replica's clients see only
its own events, so there the feed does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable

from task_scheduler.events import Event

logger = logging.getLogger(__name__)

CHANNEL = "task_scheduler_changed"
EVENTS_CHANNEL = "task_scheduler_events"
_RECONNECT_MAX_S = 30.0
PAYLOAD_MAX = 7900
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more."""
OUTBOX_MAX = 10_000
"""Events waiting to be sent while the connection is down; the oldest go first past this."""


def pack(replica_id: str, events: list[str]) -> list[str]:
    """The events (each ``Event.to_text()``) as NOTIFY payloads under the limit,
    several to a payload, in order. An event too large alone goes without its data, marked
    ``{"truncated": true}``: the run or task it names can be read over the API."""
    head = payload_head(replica_id)
    payloads: list[str] = []
    batch: list[str] = []
    size = len(head) + 2
    for text in events:
        if len(head) + len(text) + 2 > PAYLOAD_MAX:
            body = json.loads(text)
            body["data"] = {"truncated": True}
            text = json.dumps(body)
        if batch and size + len(text) + 1 > PAYLOAD_MAX:
            payloads.append(head + ",".join(batch) + "]}")
            batch, size = [], len(head) + 2
        batch.append(text)
        size += len(text) + 1
    if batch:
        payloads.append(head + ",".join(batch) + "]}")
    return payloads


def payload_head(replica_id: str) -> str:
    """How each payload of this replica's events begins."""
    return json.dumps({"replica": replica_id, "events": []})[:-2]


def is_postgres(db_url: str) -> bool:
    return db_url.split("://", 1)[0] in {"postgres", "postgresql", "asyncpg", "psycopg"}


class ChangeFeed:
    def __init__(
        self,
        db_url: str,
        replica_id: str,
        on_change: Callable[[], None],
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self._dsn = "postgresql://" + db_url.split("://", 1)[1] if is_postgres(db_url) else None
        self._replica_id = replica_id
        self._own_head = payload_head(replica_id)
        self._on_change = on_change
        self._on_event = on_event
        self._outbox: deque[str] = deque(maxlen=OUTBOX_MAX)
        self._changed = False
        self._pending = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._dsn is not None

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="change feed")

    async def wait_connected(self, timeout: float) -> bool:
        """For tests and start-up checks: True once the feed listens."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    def poke(self) -> None:
        """Something changed here: tell the others soon (coalesced with other changes)."""
        if self.enabled:
            self._changed = True
            self._pending.set()

    def relay(self, event: Event) -> None:
        """An event of this replica: send it to the others' ``/events`` clients soon.
        Events heard from another replica are not sent on."""
        if self.enabled and event.replica is None:
            self._outbox.append(event.to_text())
            self._pending.set()

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._replica_id:
            self._on_change()

    def _heard_events(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(self._own_head):
            return  # this replica's own, heard back: not parsed
        try:
            message = json.loads(payload)
            if self._on_event is None:
                return
            for body in message["events"]:
                self._on_event(Event.from_json(body, message["replica"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable event notification ignored: %.200s", payload)

    async def _run(self) -> None:
        import asyncpg

        delay = 0.1
        while True:
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                logger.warning("change feed cannot connect (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await connection.add_listener(CHANNEL, self._heard)
                await connection.add_listener(EVENTS_CHANNEL, self._heard_events)
                self._on_change()  # changes may have been missed while not listening
                self._connected.set()
                delay = 0.1
                await self._announce_until(connection, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("change feed lost its connection (%s); reconnecting", exc)
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)

    async def _announce_until(self, connection: object, lost: asyncio.Event) -> None:
        while not lost.is_set():
            waiter = asyncio.create_task(self._pending.wait())
            gone = asyncio.create_task(lost.wait())
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            gone.cancel()
            if self._pending.is_set() and not lost.is_set():
                self._pending.clear()
                if self._changed:
                    self._changed = False
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, self._replica_id)
                events = [self._outbox.popleft() for _ in range(len(self._outbox))]
                for payload in pack(self._replica_id, events):
                    await connection.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
