"""Which database errors are worth another try, and how long to wait before it."""

from __future__ import annotations

import asyncmy.errors
import asyncpg.exceptions
import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from task_scheduler.storage import retry


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        OperationalError(asyncmy.errors.OperationalError(1213, "Deadlock found")),
        OperationalError(asyncmy.errors.OperationalError(1205, "Lock wait timeout exceeded")),
    ],
)
def test_deadlocks_and_serialization_failures_are_transient(error):
    assert retry.transient(error)
    try:
        raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert retry.transient(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        IntegrityError(asyncmy.errors.IntegrityError(1062, "Duplicate entry")),
        OperationalError(asyncmy.errors.OperationalError(2003, "Can't connect")),
        OperationalError("database is locked"),
        ValueError(1213),  # the number alone, not from a MySQL driver
    ],
)
def test_other_errors_are_not(error):
    assert not retry.transient(error)


def test_each_pause_doubles_within_half_to_one_and_a_half_of_its_base():
    assert [retry.pause_s(n, lambda: 0.0) for n in (1, 2, 3)] == pytest.approx([0.01, 0.02, 0.04])
    assert [retry.pause_s(n, lambda: 1.0) for n in (1, 2, 3)] == pytest.approx([0.03, 0.06, 0.12])
    assert retry.ATTEMPTS == 4
