"""Which errors mean the database cannot serve now, and the reason the API and /readyz give."""

from __future__ import annotations

import sqlite3

import asyncmy.errors
import asyncpg.exceptions
import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from task_scheduler.storage.faults import unavailable


def sqlite_error(sql: str, *setup: str) -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    for statement in setup:
        conn.execute(statement)
    try:
        conn.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OperationalError(sqlite_error("CREATE TABLE t (a)", "PRAGMA query_only = ON")), "read-only"),
        (
            OperationalError(
                sqlite_error(
                    "INSERT INTO t VALUES (zeroblob(100000))",
                    "CREATE TABLE t (a)",
                    "PRAGMA max_page_count = 2",
                )
            ),
            "full",
        ),
        (OperationalError(sqlite_error("ATTACH '/no/such/dir/x.db' AS x")), "unreachable"),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "unreachable"),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), "unreachable"),
        (asyncpg.InternalClientError("cannot switch to state 11"), "unreachable"),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"), "read-only"),
        (asyncpg.exceptions.DiskFullError("could not extend file"), "full"),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), "busy"),
        (OperationalError(asyncmy.errors.OperationalError(2003, "Can't connect")), "unreachable"),
        (OperationalError(asyncmy.errors.OperationalError(1290, "--read-only")), "read-only"),
        (OperationalError(asyncmy.errors.OperationalError(1114, "The table is full")), "full"),
        (OperationalError(asyncmy.errors.OperationalError(1213, "Deadlock found")), "busy"),
    ],
)
def test_outages_are_named(error, reason):
    assert unavailable(error) == reason


@pytest.mark.parametrize(
    "error",
    [
        OperationalError(sqlite_error("SELECT * FROM nowhere")),
        IntegrityError(
            sqlite_error("INSERT INTO t VALUES (1)", "CREATE TABLE t (a UNIQUE)", "INSERT INTO t VALUES (1)")
        ),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("no such table"),
        OperationalError(asyncmy.errors.ProgrammingError(1064, "syntax error")),
        ConnectionRefusedError(111, "refused outside any driver"),
        ValueError("a bug"),
    ],
)
def test_other_errors_are_not_outages(error):
    assert unavailable(error) is None
