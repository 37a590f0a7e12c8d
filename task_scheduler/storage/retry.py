"""Run a unit of database work again when the database gave it up to break a deadlock.

PostgreSQL (40P01 deadlock, 40001 serialization failure) and MySQL/MariaDB (1213 deadlock,
1205 lock wait timeout) roll back the whole transaction of the loser: nothing it wrote
stays, so running the same work again from its start is correct, and usually succeeds
at once. Only the outermost unit can be run again: inside a caller's transaction the
error goes up unchanged, for the caller's own ``retrying`` to restart the whole of it.

Every retry waits a short, jittered pause (``pause_s``) so that the two sides of a
deadlock do not meet again in step; after ``ATTEMPTS`` tries the error goes up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient

from task_scheduler.storage.faults import chain

logger = logging.getLogger(__name__)

ATTEMPTS = 4
"""Tries in all, the first included."""
FIRST_PAUSE_S = 0.02
"""The pause before the first retry, doubled before each next one, jittered ±50%."""
POSTGRES_STATES = frozenset({"40001", "40P01"})
MYSQL_CODES = frozenset({1213, 1205})
MYSQL_DRIVERS = frozenset({"asyncmy", "pymysql"})

P = ParamSpec("P")
T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """Whether this error, or one it wraps, is a deadlock or serialization failure.

    asyncpg's errors carry a ``sqlstate``; asyncmy's carry the MySQL error number as their
    first argument, and Tortoise wraps them in its own errors with the driver's as argument."""
    for error in chain(exc):
        if getattr(error, "sqlstate", None) in POSTGRES_STATES:
            return True
        first = error.args[0] if error.args else None
        if first in MYSQL_CODES and type(error).__module__.split(".")[0] in MYSQL_DRIVERS:
            return True
    return False


def pause_s(retry: int, rand: Callable[[], float] = random.random) -> float:
    """How long to wait before retry number ``retry`` (1 for the first)."""
    return FIRST_PAUSE_S * 2 ** (retry - 1) * (0.5 + rand())


def in_transaction() -> bool:
    """Whether the calling task is inside a transaction (its connection is a transaction's)."""
    return any(isinstance(connections.get(name), TransactionalDBClient) for name in connections.db_config)


async def retried(work: Callable[[], Awaitable[T]], what: str) -> T:
    """``work()``, run again after a deadlock or serialization failure, up to ``ATTEMPTS``
    times in all; inside a caller's transaction, once (the caller retries the whole)."""
    if in_transaction():
        return await work()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await work()
        except Exception as exc:
            if attempt == ATTEMPTS or not transient(exc):
                raise
            pause = pause_s(attempt)
            logger.warning(
                "%s met a deadlock or serialization failure; retrying in %.0f ms (try %d of %d)",
                what,
                pause * 1000,
                attempt + 1,
                ATTEMPTS,
            )
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # the last attempt returns or raises


def retrying(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a coroutine function that is one unit of database work with ``retried``."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await retried(lambda: method(*args, **kwargs), method.__qualname__)

    return wrapper
