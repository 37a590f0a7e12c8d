"""Database lifecycle: connect, apply the shipped migrations, check health, close.

The schema is only ever changed by the aerich migrations in ``migrations/models``;
``generate_schemas`` is never used, so a production database upgrades in place.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aerich import Command
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from task_scheduler.storage.faults import UNREACHABLE, unavailable
from task_scheduler.storage.orm import HealthRecord

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
APP = "models"
TABLES = ("runs", "targets", "tasks", "rules", "users", "health", "aerich")
"""Every table the migrations make: what a scratch database drops to start afresh."""
OPEN_TIMEOUT_S = 15.0
"""How long start-up waits for the database to answer before giving up with the reason."""
PROBE_PAD = bytes(6000)
"""What the readiness probe writes: more than a 4 KiB SQLite page, so that the write needs
pages of its own and fails on a full database as real writes do."""


class DatabaseUnavailable(Exception):
    """The database cannot be opened, or not written; the message names it and why."""


def shown_url(db_url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(db_url)
    if parts.password is None:
        return db_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Readiness:
    """What ``/readyz`` reports: whether the database answers and takes a write, and why not."""

    reachable: bool
    writable: bool
    reason: str | None = None
    pending: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.reachable and self.writable and not self.pending


def connection_name(db_url: str) -> str:
    """Name the connection after the database kind: Tortoise caches prepared queries by
    connection name, so a process that opens SQLite and then PostgreSQL (the contract
    tests) must not reuse a name."""
    return db_url.split("://", 1)[0]


SQLITE_DEFAULTS = {"synchronous": "NORMAL", "busy_timeout": "5000"}


def with_sqlite_defaults(db_url: str) -> str:
    """SQLite runs in WAL mode (Tortoise's default) with ``synchronous=NORMAL`` unless the URL
    says otherwise: a crash of the service loses no committed change; only a power cut or an
    operating-system crash may roll back the last moments (``?synchronous=FULL`` prevents
    that too, at about twice the cost per write). The API's and the dispatcher's
    connections each wait up to ``busy_timeout`` (ms) for the other's write."""
    if not db_url.startswith("sqlite://"):
        return db_url
    for pragma, value in SQLITE_DEFAULTS.items():
        if f"{pragma}=" not in db_url:
            db_url += ("&" if "?" in db_url else "?") + f"{pragma}={value}"
    return db_url


async def _session_kept(_: Any) -> None:
    """A pooled PostgreSQL connection goes back as it is, without asyncpg's reset query
    (a round trip per checkout): this pool never changes a session's settings, listens or
    takes advisory locks (the change feed has a connection of its own), and an open
    transaction is still rolled back by the pool before this is called."""


def connection_settings(db_url: str) -> str | dict[str, Any]:
    """What Tortoise connects with: the URL; for SQLite its settings read from the URL with
    this package's engine (``sqlite_engine``), which serves the dispatcher first; for
    PostgreSQL with asyncpg, a pool that hands connections back without a reset query."""
    if db_url.startswith("sqlite://"):
        sqlite = expand_db_url(with_sqlite_defaults(db_url))
        return {**sqlite, "engine": "task_scheduler.storage.sqlite_engine"}
    settings = expand_db_url(db_url)
    if settings["engine"] != "tortoise.backends.asyncpg":
        return db_url
    settings["credentials"]["reset"] = _session_kept
    return settings


def tortoise_config(db_url: str) -> dict[str, Any]:
    name = connection_name(db_url)
    return {
        "connections": {name: connection_settings(db_url)},
        "apps": {
            APP: {
                "models": ["task_scheduler.storage.orm", "aerich.models"],
                "default_connection": name,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


class Database:
    """One connection pool for the process, opened and closed by the app's lifespan."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._config = tortoise_config(db_url)
        self._connection = connection_name(db_url)
        self._open = False
        self._up_to_date = False

    @property
    def dialect(self) -> str:
        return connections.get(self._connection).schema_generator.DIALECT

    async def open(self, *, migrate: bool) -> None:
        """Connect (and migrate); ``DatabaseUnavailable`` when the database cannot be opened,
        created or written, or does not answer within ``OPEN_TIMEOUT_S``."""
        # The global fallback lets request handlers, which run in other tasks than the
        # lifespan, see the connections opened here.
        await Tortoise.init(config=self._config, _enable_global_fallback=True)
        self._open = True
        try:
            await asyncio.wait_for(self._writable(), OPEN_TIMEOUT_S)
        except Exception as exc:
            await self.close()
            why = "no answer" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise DatabaseUnavailable(f"cannot open the database {shown_url(self.db_url)}: {why}") from exc
        if migrate:
            await self.migrate()

    async def _writable(self) -> None:
        """Connect; for SQLite, open the file and take its write lock (which creates it), so
        that a missing directory or a read-only file fails here, before Tortoise opens it.
        A server's database is writable unless its tables say otherwise (``readiness``)."""
        if self.dialect != "sqlite":
            await connections.get(self._connection).execute_query("SELECT 1")
            return
        path = self._config["connections"][self._connection]["credentials"]["file_path"]

        def try_write() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()

        await asyncio.to_thread(try_write)

    async def _command(self) -> Command:
        command = Command(self._config, app=APP, location=str(MIGRATIONS_DIR))
        await command.init()
        return command

    async def migrate(self) -> list[str]:
        """Apply the migrations this database has not seen yet; return their names."""
        applied = await (await self._command()).upgrade(run_in_transaction=True)
        for name in applied:
            logger.info("applied migration %s", name)
        return applied

    async def pending_migrations(self) -> list[str]:
        """Shipped migrations the database lacks; once none, the answer cannot change."""
        if self._up_to_date:
            return []
        try:
            pending = await (await self._command()).heads()
        except OperationalError:  # no version table yet: nothing is applied
            return [path.name for path in sorted((MIGRATIONS_DIR / APP).glob("[0-9]*_*.py"))]
        self._up_to_date = not pending
        return pending

    async def readiness(self) -> Readiness:
        """Whether the database answers, takes a write, and has every shipped migration.

        The write is a row of ``PROBE_PAD`` inserted and deleted in one committed
        transaction: a read-only or full database fails it as it fails real writes, and
        the table stays empty. Any failure means not ready: a restarting server raises the
        driver's own errors (asyncpg's ``CannotConnectNowError``), which Tortoise does not
        translate.
        """
        try:
            await connections.get(self._connection).execute_query("SELECT 1")
            pending = await self.pending_migrations()
        except Exception as exc:
            logger.warning("database not ready: %s", exc)
            return Readiness(reachable=False, writable=False, reason=unavailable(exc) or UNREACHABLE)
        if pending:  # the health table may not be there yet
            return Readiness(reachable=True, writable=False, reason="migrations pending", pending=pending)
        try:
            async with in_transaction(self._connection):
                probe = await HealthRecord.create(id=str(uuid.uuid4()), pad=PROBE_PAD)
                await probe.delete()
        except Exception as exc:
            logger.warning("database not writable: %s", exc)
            return Readiness(reachable=True, writable=False, reason=unavailable(exc) or "not writable")
        return Readiness(reachable=True, writable=True)

    async def close(self) -> None:
        if self._open:
            await Tortoise.close_connections()
            self._open = False
