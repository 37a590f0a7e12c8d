"""Tortoise's SQLite backend, its one connection shared in the order of ``storage.priority``.

``database.tortoise_config`` names this module as the engine of a SQLite database.

The dispatcher opens a second connection to the same file (see
``services.dispatch_thread``). In WAL mode readers never wait, but two writers do: a
transaction here takes the write lock at its start (``BEGIN IMMEDIATE``), waiting up to
``busy_timeout`` for the other connection's, rather than reading first and then failing
with "database is locked" when it comes to write after the other connection has.

Tortoise takes the connection's lock and then opens the connection; when opening fails
(a file that cannot be created) the lock was never given back, and every later statement
waited for it forever: start-up hung without a word. A transaction whose ``BEGIN`` or
``COMMIT`` failed (a full disk) kept it too, or left the connection inside the transaction.
Here the lock is given back and a failed commit rolled back, so the next statement can
succeed as soon as the database can be written again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from tortoise.backends.base.client import ConnectionWrapper, TransactionalDBClient
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from task_scheduler.storage.priority import PriorityLock


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            if self._connection.in_transaction:  # one the driver opened by itself: ended first
                await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class _Connection(ConnectionWrapper):
    async def __aenter__(self) -> Any:
        await self._lock.acquire()
        try:
            await self.ensure_connection()
        except BaseException:
            self._lock.release()
            raise
        return self.connection


class _Transaction(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            await self.connection.begin()
        except BaseException:
            self._trxlock.release()
            raise
        self.token = get_connections().set(self.connection_name, self.connection)
        return self.connection

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if self.connection._finalized:
                return
            if exc_type is None:
                try:
                    await self.connection.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.connection._connection.rollback()
                    raise
            elif exc_type is not TransactionManagementError:
                await self.connection.rollback()
        finally:
            get_connections().reset(self.token)
            self._trxlock.release()


class PrioritySqliteClient(SqliteClient):
    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self._lock = PriorityLock()  # what every statement and transaction waits on

    def acquire_connection(self) -> ConnectionWrapper:
        return _Connection(self._lock, self)

    def _in_transaction(self) -> SqliteTransactionContext:
        return _Transaction(_ImmediateTransaction(self), self._lock)


client_class = PrioritySqliteClient
