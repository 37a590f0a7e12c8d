"""Database lifecycle: connect, apply the shipped migrations, check health, close.

The schema is only ever changed by the aerich migrations in ``migrations/models``;
``generate_schemas`` is never used, so a production database upgrades in place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aerich import Command
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import OperationalError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
APP = "models"
TABLES = ("runs", "targets", "tasks", "rules", "users", "aerich")
"""Every table the migrations make: what a scratch database drops to start afresh."""


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


def connection_settings(db_url: str) -> str | dict[str, Any]:
    """What Tortoise connects with: the URL, or for SQLite its settings read from the URL
    with this package's engine (``sqlite_engine``), which serves the dispatcher first."""
    if not db_url.startswith("sqlite://"):
        return db_url
    return {**expand_db_url(with_sqlite_defaults(db_url)), "engine": "task_scheduler.storage.sqlite_engine"}


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
        # The global fallback lets request handlers, which run in other tasks than the
        # lifespan, see the connections opened here.
        await Tortoise.init(config=self._config, _enable_global_fallback=True)
        self._open = True
        if migrate:
            await self.migrate()

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

    async def readiness(self) -> tuple[bool, list[str]]:
        """Whether the database answers, and the shipped migrations it lacks.

        Any failure means it does not answer: a restarting server raises the driver's own
        errors (asyncpg's ``CannotConnectNowError``), which Tortoise does not translate.
        """
        try:
            await connections.get(self._connection).execute_query("SELECT 1")
            return True, await self.pending_migrations()
        except Exception as exc:
            logger.warning("database not ready: %s", exc)
            return False, []

    async def close(self) -> None:
        if self._open:
            await Tortoise.close_connections()
            self._open = False
