"""Run ``sql`` tasks' queries against a ``database`` target: PostgreSQL (asyncpg),
MySQL/MariaDB (asyncmy) or SQLite (aiosqlite).

Each run opens its own connection, inside the target's ``max_connections``, and closes it
after: scheduled jobs run minutes or hours apart, so a pool would mostly hold idle
connections that the server or a firewall drops in between, and a fresh connection checks
the allowlist (and DNS) again every time. Each run is one transaction; a read's is
read-only, so a query marked read cannot change anything.

The target's ``timeout_s`` is enforced by the server where it can be (PostgreSQL's
``statement_timeout``, MariaDB's ``max_statement_time``, MySQL's ``max_execution_time``
for reads) and by the client in any case: the statement is cancelled (PostgreSQL's cancel
request, MySQL's ``KILL QUERY``, SQLite's interrupt) and the transaction rolled back.

Outcomes: no connection (refused, unreachable, no such file) is an outage (not reached);
deadlocks, serialization failures, locks and lost connections fail and are retried; any
other database error (a constraint, a syntax error, a write in a read query) is a
refusal, not retried. Only a run cut off while committing is ambiguous.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from task_scheduler.domain.allowlist import Allowlist
from task_scheduler.domain.sql import parse, read_result
from task_scheduler.domain.targets import DatabaseQuery, DatabaseTarget, dialect_of, sqlite_file
from task_scheduler.transports.allowlist import NotAllowed, checked_host
from task_scheduler.transports.base import RESPONSE_LIMIT, Delivery, LookupFailed, Outcome, logged, shorten

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S: Final = 5.0
CLIENT_GRACE_S: Final = 1.0
"""How much longer than the target's timeout_s the client waits before it cancels."""
_PG_RETRYABLE: Final = ("40", "53", "08", "55P03", "57P01", "57P02", "57P03")
"""SQLSTATE classes and codes worth retrying: transaction rollback (deadlock,
serialization), insufficient resources, connection trouble, lock not available, shutdown."""
_PG_CANCELLED: Final = "57014"
_MYSQL_RETRYABLE: Final = frozenset({1040, 1205, 1213, 2006, 2013})
"""Too many connections, lock wait timeout, deadlock, server gone away, connection lost."""
_MYSQL_TIMED_OUT: Final = frozenset({1317, 1969, 3024})
"""Query interrupted (killed), MariaDB's and MySQL's statement time limits."""
_MYSQL_CANNOT_CONNECT: Final = frozenset({2002, 2003, 2005})


class _Unreachable(Exception):
    """No connection could be made; the message says why."""


@dataclass
class _Progress:
    """How far a run got, to tell what a failure means."""

    connected: bool = False
    committing: bool = False


class SqlTransport:
    """Runs the queries of one database target."""

    supports_lookup = False

    def __init__(self, config: DatabaseTarget, allowlist: Allowlist) -> None:
        self._config = config
        self._allowlist = allowlist
        self._dialect = dialect_of(config.url)
        self._statements = {name: parse(query.sql, self._dialect) for name, query in config.queries.items()}
        self.capacity = config.max_connections
        self._slots = asyncio.Semaphore(self.capacity)

    def __repr__(self) -> str:
        return f"SqlTransport(dialect={self._dialect!r})"

    def _describe(self, error: BaseException) -> str:
        """The error as a run may keep it: never with the password in it."""
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if self._config.password:
            text = text.replace(self._config.password, "***")
        return shorten(text)

    async def submit(self, message: dict[str, Any]) -> Delivery:
        name = message["query"]
        where = f"database query {name!r}"
        query = self._config.queries.get(name)
        if query is None:
            return logged(
                logger, where, Delivery(Outcome.REJECTED, error=f"the target has no query {name!r}")
            )
        params = message.get("params") or {}
        wanted = self._statements[name].parameters
        if set(params) != set(wanted):
            error = f"query {name!r} takes {sorted(wanted)}, the task gives {sorted(params)}"
            return logged(logger, where, Delivery(Outcome.REJECTED, error=error))
        text, args = self._statements[name].arguments(self._dialect, params)
        run = {"postgres": self._postgres, "mysql": self._mysql, "sqlite": self._sqlite}[self._dialect]
        progress = _Progress()
        timeout_s = self._config.timeout_s
        async with self._slots:
            try:
                # The server's own limit normally ends a slow statement first, and cleanly.
                result = await asyncio.wait_for(run(text, args, query, progress), timeout_s + CLIENT_GRACE_S)
            except NotAllowed as error:
                return logged(logger, where, Delivery(Outcome.REJECTED, error=str(error)))
            except TimeoutError:
                if not progress.connected:
                    delivery = Delivery(
                        Outcome.FAILED, error=f"cannot connect within {timeout_s:g} s", reached=False
                    )
                else:
                    delivery = Delivery(
                        Outcome.TIMEOUT,
                        error=f"cancelled after the target's timeout_s ({timeout_s:g} s)",
                        ambiguous=progress.committing,
                    )
                return logged(logger, where, delivery)
            except _Unreachable as error:
                return logged(
                    logger, where, Delivery(Outcome.FAILED, error=f"cannot connect: {error}", reached=False)
                )
            except OSError as error:
                delivery = Delivery(
                    Outcome.FAILED,
                    error=self._describe(error)
                    if progress.connected
                    else f"cannot connect: {self._describe(error)}",
                    ambiguous=progress.committing,
                    reached=progress.connected,
                )
                return logged(logger, where, delivery)
            except Exception as error:
                outcome = self._outcome(error)
                delivery = Delivery(
                    outcome,
                    error=self._describe(error),
                    ambiguous=progress.committing,
                    reached=progress.connected or outcome is Outcome.REJECTED,
                )
                return logged(logger, where, delivery)
        return logged(logger, where, Delivery(Outcome.SUCCEEDED, response=result))

    def _outcome(self, error: Exception) -> Outcome:
        """What a database error means: a timeout, worth a retry (failed), or a refusal."""
        if self._dialect == "postgres":
            state = str(getattr(error, "sqlstate", "") or "")
            if state == _PG_CANCELLED:
                return Outcome.TIMEOUT
            return Outcome.FAILED if state.startswith(_PG_RETRYABLE) else Outcome.REJECTED
        if self._dialect == "mysql":
            code = error.args[0] if error.args and isinstance(error.args[0], int) else None
            if code in _MYSQL_TIMED_OUT:
                return Outcome.TIMEOUT
            return Outcome.FAILED if code in _MYSQL_RETRYABLE else Outcome.REJECTED
        text = str(error).lower()
        if "interrupted" in text:
            return Outcome.TIMEOUT
        return Outcome.FAILED if "locked" in text or "busy" in text else Outcome.REJECTED

    async def _postgres(
        self, text: str, args: list[Any], query: DatabaseQuery, progress: _Progress
    ) -> dict[str, Any]:
        import asyncpg

        parts = urlsplit(self._config.url)
        host = await checked_host(self._allowlist, parts.hostname, parts.port)
        # postgresql:// is the scheme asyncpg knows; both name the same thing here. The host
        # given apart overrides the URL's: the driver connects to the host that was checked.
        dsn = "postgresql://" + self._config.url.split("://", 1)[1]
        try:
            conn = await asyncpg.connect(
                dsn,
                host=host,
                port=parts.port,
                password=self._config.password,
                timeout=self._config.timeout_s,
            )
        except (OSError, asyncpg.CannotConnectNowError) as error:
            raise _Unreachable(self._describe(error)) from None
        progress.connected = True
        try:
            transaction = conn.transaction(readonly=query.mode == "read")
            await transaction.start()
            await conn.execute(f"SET LOCAL statement_timeout = {int(self._config.timeout_s * 1000)}")
            if query.mode == "read":
                statement = await conn.prepare(text)
                columns = [attribute.name for attribute in statement.get_attributes()]
                cursor = await statement.cursor(*args)
                rows = await cursor.fetch(query.max_rows + 1)
                return read_result(columns, [tuple(row) for row in rows], query.max_rows, RESPONSE_LIMIT)
            status = await conn.execute(text, *args)
            progress.committing = True
            await transaction.commit()
            count = status.rsplit(" ", 1)[-1]
            return {"rows_affected": int(count) if count.isdigit() else 0}
        finally:
            await _close(conn.close(timeout=CLOSE_TIMEOUT_S), conn.terminate)

    async def _mysql(
        self, text: str, args: list[Any], query: DatabaseQuery, progress: _Progress
    ) -> dict[str, Any]:
        import asyncmy
        from asyncmy.cursors import SSCursor
        from asyncmy.errors import OperationalError

        parts = urlsplit(self._config.url)
        where = {
            "host": await checked_host(self._allowlist, parts.hostname, parts.port),
            "port": parts.port or 3306,
            "user": unquote(parts.username or ""),
            "password": self._config.password or "",
            "connect_timeout": self._config.timeout_s,
        }
        try:
            conn = await asyncmy.connect(db=unquote(parts.path.lstrip("/")), autocommit=False, **where)
        except OperationalError as error:
            if error.args and error.args[0] in _MYSQL_CANNOT_CONNECT:
                raise _Unreachable(self._describe(error)) from None
            raise
        progress.connected = True
        try:
            # Not closed: closing an unbuffered cursor reads the rest of the rows; closing
            # the connection drops them.
            cursor = conn.cursor(SSCursor if query.mode == "read" else None)
            limit_s = self._config.timeout_s
            if "mariadb" in conn.get_server_info().lower():
                await cursor.execute(f"SET SESSION max_statement_time = {limit_s:.3f}")
            else:
                await cursor.execute(f"SET SESSION max_execution_time = {int(limit_s * 1000)}")
            await cursor.execute(
                "START TRANSACTION READ ONLY" if query.mode == "read" else "START TRANSACTION"
            )
            try:
                await cursor.execute(text, tuple(args))
                if query.mode == "read":
                    columns = [column[0] for column in cursor.description or ()]
                    rows = await cursor.fetchmany(query.max_rows + 1)
                    return read_result(columns, list(rows), query.max_rows, RESPONSE_LIMIT)
                affected = cursor.rowcount
                progress.committing = True
                await conn.commit()
                return {"rows_affected": max(affected, 0)}
            except asyncio.CancelledError:
                await _kill_mysql(where, conn.thread_id())
                raise
        finally:
            conn.close()

    async def _sqlite(
        self, text: str, args: list[Any], query: DatabaseQuery, progress: _Progress
    ) -> dict[str, Any]:
        import aiosqlite

        path = sqlite_file(self._config.url)
        try:
            # mode=rw: a missing file is an error, never a new empty database.
            conn = await aiosqlite.connect(
                f"file:{quote(path)}?mode=rw",
                uri=True,
                isolation_level=None,
                timeout=self._config.timeout_s,
            )
        except aiosqlite.OperationalError as error:
            raise _Unreachable(f"{self._describe(error)} ({path})") from None
        progress.connected = True
        try:
            if query.mode == "read":
                await conn.execute("PRAGMA query_only = ON")
            await conn.execute("BEGIN")
            try:
                cursor = await conn.execute(text, args)
                if query.mode == "read":
                    columns = [column[0] for column in cursor.description or ()]
                    rows = await cursor.fetchmany(query.max_rows + 1)
                    return read_result(columns, list(rows), query.max_rows, RESPONSE_LIMIT)
                affected = cursor.rowcount
                progress.committing = True
                await conn.execute("COMMIT")
                return {"rows_affected": max(affected, 0)}
            except asyncio.CancelledError:
                await conn.interrupt()
                raise
        finally:
            await _close(conn.close(), lambda: None)

    async def find(self, label: str) -> str | None:
        raise LookupFailed("a database cannot be asked which runs it received")

    async def aclose(self) -> None:
        """Nothing to release: connections last one run."""


async def _close(closing: Any, abort: Any) -> None:
    """Close a connection, even while the run is being cancelled; abort it when that fails."""
    try:
        await asyncio.shield(asyncio.wait_for(closing, CLOSE_TIMEOUT_S))
    except (Exception, asyncio.CancelledError):
        abort()


async def _kill_mysql(where: dict[str, Any], thread_id: int) -> None:
    """Stop the statement running on connection ``thread_id``: MySQL would otherwise finish
    it after its client has gone."""
    import asyncmy

    try:
        killer = await asyncio.shield(asyncmy.connect(**where))
        try:
            async with killer.cursor() as cursor:
                await asyncio.shield(cursor.execute(f"KILL QUERY {int(thread_id)}"))
        finally:
            killer.close()
    except Exception:
        logger.warning("could not stop MySQL query on connection %s", thread_id, exc_info=True)
