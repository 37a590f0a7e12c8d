"""Tortoise's SQLite backend, its one connection shared in the order of ``storage.priority``.

``database.tortoise_config`` names this module as the engine of a SQLite database.

The dispatcher opens a second connection to the same file (see
``services.dispatch_thread``). In WAL mode readers never wait, but two writers do: a
transaction here takes the write lock at its start (``BEGIN IMMEDIATE``), waiting up to
``busy_timeout`` for the other connection's, rather than reading first and then failing
with "database is locked" when it comes to write after the other connection has.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError

from task_scheduler.storage.priority import PriorityLock


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class PrioritySqliteClient(SqliteClient):
    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self._lock = PriorityLock()  # what every statement and transaction waits on

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(_ImmediateTransaction(self), self._lock)


client_class = PrioritySqliteClient
