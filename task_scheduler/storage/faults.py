"""Which database errors mean "the database cannot serve now", and why, in a few words.

The API answers those with 503 and ``/readyz`` names the reason; any other error (a
constraint, a bug) stays what it is. Each driver says it its own way: SQLite by result
code, PostgreSQL by SQLSTATE, MySQL/MariaDB by error number, and a network failure as an
``OSError`` from inside a driver. Tortoise wraps driver errors with the driver's as its
first argument, so the whole chain is looked at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from tortoise.exceptions import BaseORMException

UNREACHABLE = "unreachable"
READ_ONLY = "read-only"
FULL = "full"
BUSY = "busy"

_SQLITE = {3: UNREACHABLE, 5: BUSY, 6: BUSY, 8: READ_ONLY, 10: UNREACHABLE, 13: FULL, 14: UNREACHABLE}
"""SQLite primary result codes: PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN."""
_POSTGRES = {
    "53100": FULL,  # disk_full
    "25006": READ_ONLY,  # read_only_sql_transaction (a standby, default_transaction_read_only)
    "55000": UNREACHABLE,  # a database that does not accept connections (ALLOW_CONNECTIONS false)
    "57P01": UNREACHABLE,  # admin_shutdown
    "57P02": UNREACHABLE,  # crash_shutdown
    "57P03": UNREACHABLE,  # cannot_connect_now (starting up or shutting down)
    "40001": BUSY,  # serialization_failure, still there after the retries
    "40P01": BUSY,  # deadlock_detected, likewise
}
_POSTGRES_CLASSES = {"08": UNREACHABLE, "53": BUSY}
"""connection_exception, insufficient_resources (other than a full disk)."""
_MYSQL = {
    **dict.fromkeys((2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927), UNREACHABLE),
    **dict.fromkeys((1290, 1792), READ_ONLY),  # --read-only server, read-only transaction
    **dict.fromkeys((1021, 1114), FULL),  # disk full, table full
    **dict.fromkeys((1205, 1213), BUSY),  # lock wait timeout, deadlock: after the retries
}
_ASYNCPG_BROKEN = ("InterfaceError", "ConnectionDoesNotExistError", "InternalClientError")
"""asyncpg's errors of a connection cut under it: "connection is closed", or a protocol
left mid-operation ("cannot switch to state ...; another operation is in progress")."""
_DRIVERS = ("/asyncpg/", "/asyncmy/", "/aiosqlite/", "/tortoise/")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, the ones it wraps (a first argument, a cause, a context), theirs, and so on."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        first = error.args[0] if error.args else None
        pending += [e for e in (first, error.__cause__, error.__context__) if isinstance(e, BaseException)]


def _raised_in_a_driver(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        if any(part in frame.tb_frame.f_code.co_filename for part in _DRIVERS):
            return True
        frame = frame.tb_next
    return False


def _one(error: BaseException) -> str | None:
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return _SQLITE.get(code & 0xFF) if isinstance(code, int) else None
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        return _POSTGRES.get(state) or _POSTGRES_CLASSES.get(state[:2])
    module = type(error).__module__.split(".")[0]
    if module == "asyncpg" and type(error).__name__ in _ASYNCPG_BROKEN:
        return UNREACHABLE  # the server went away under the connection
    if module == "asyncmy":
        code = error.args[0] if error.args else None
        return _MYSQL.get(code) if isinstance(code, int) else None
    if isinstance(error, OSError) and _raised_in_a_driver(error):
        return UNREACHABLE
    return None


def unavailable(exc: BaseException) -> str | None:
    """Why the database cannot serve, if this error says so: ``unreachable``, ``read-only``,
    ``full`` or ``busy``; None for any other error."""
    for error in chain(exc):
        if (reason := _one(error)) is not None:
            return reason
    return None


def _driver_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [BaseORMException, sqlite3.Error, OSError]
    try:
        import asyncpg

        found += [asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError]
    except ImportError:
        pass
    try:
        import asyncmy.errors

        found.append(asyncmy.errors.Error)
    except ImportError:
        pass
    return tuple(found)


DRIVER_ERRORS = _driver_errors()
"""The error classes worth looking at with ``unavailable``: what the drivers and Tortoise raise."""
