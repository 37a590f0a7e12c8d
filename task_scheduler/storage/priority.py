"""The dispatcher goes first on a shared SQLite connection.

SQLite is one connection per process, and every statement holds it for a round trip to
its thread and back through the event loop. Under API load a claim used to queue behind
every API statement already waiting, which was most of a task's lateness. Statements made
by tasks that called ``serve_first()`` (the dispatch loop and the dispatches it starts)
are served before the others. So that the API is never shut out by a long burst, one
waiting statement of the others is served after ``FIRST_IN_A_ROW`` of the first in a row.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque

FIRST_IN_A_ROW = 8

_first: contextvars.ContextVar[bool] = contextvars.ContextVar("served_first", default=False)


def serve_first() -> None:
    """Put the calling task, and every task it starts from now on, first in line."""
    _first.set(True)


class PriorityLock:
    """An asyncio lock with two queues: the ``serve_first`` tasks', then the others'."""

    def __init__(self) -> None:
        self._locked = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()
        self._first_in_a_row = 0

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> bool:
        if not self._locked and not self._first and not self._others:
            self._locked = True
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._first if _first.get() else self._others
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed the lock as it was cancelled: pass it on
            else:
                queue.remove(waiter)
            raise
        return True

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("release of an unlocked PriorityLock")
        self._locked = False
        self._hand_on()

    def _hand_on(self) -> None:
        """Give the lock to the next waiter: a first one, unless others have waited through
        ``FIRST_IN_A_ROW`` of them."""
        others_turn = self._others and (not self._first or self._first_in_a_row >= FIRST_IN_A_ROW)
        queue = self._others if others_turn else self._first
        if not queue:
            return
        self._first_in_a_row = 0 if others_turn else self._first_in_a_row + 1
        self._locked = True
        queue.popleft().set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
