"""Tell the other replicas that rules or tasks changed, and hear when they did.

On PostgreSQL this is LISTEN/NOTIFY on one dedicated connection: a change on replica A
wakes the dispatcher of replica B within milliseconds instead of at its next poll.
Announcements are coalesced (one NOTIFY per burst of changes) and sent off the request
path.  SQLite serves a single process, and on MySQL/MariaDB replicas rely on the
dispatcher's poll, so there the feed does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

CHANNEL = "task_scheduler_changed"
_RECONNECT_MAX_S = 30.0


def is_postgres(db_url: str) -> bool:
    return db_url.split("://", 1)[0] in {"postgres", "postgresql", "asyncpg", "psycopg"}


class ChangeFeed:
    def __init__(self, db_url: str, replica_id: str, on_change: Callable[[], None]) -> None:
        self._dsn = "postgresql://" + db_url.split("://", 1)[1] if is_postgres(db_url) else None
        self._replica_id = replica_id
        self._on_change = on_change
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
            self._pending.set()

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._replica_id:
            self._on_change()

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
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, self._replica_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
