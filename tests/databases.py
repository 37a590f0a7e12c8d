"""Real databases for the tests: SQLite files, and the PostgreSQL and MariaDB servers.

PostgreSQL and MariaDB are found at ``TEST_POSTGRES_URL`` and ``TEST_MYSQL_URL``
(defaults: the local test servers).  Where one is not reachable its tests skip with the
reason, unless ``RMF_TASK_SCHEDULER_REQUIRE_DBS=1`` (set by CI) turns the skip into a failure.
Each test gets a clean database: the scheduler's tables are dropped and the service
migrates from scratch.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from task_scheduler.storage.database import TABLES

# A database of the tests' own on each server, created on first use, so that the tests
# never touch other data there.
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/task_scheduler_test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306/task_scheduler_test")
REQUIRE_DBS = os.environ.get("RMF_TASK_SCHEDULER_REQUIRE_DBS") == "1"


def _parts(url: str) -> tuple[str, str, str, int, str]:
    """user, password, host, port, database of a postgres:// or mysql:// URL."""
    scheme, rest = url.split("://", 1)
    credentials, location = rest.rsplit("@", 1)
    user, _, password = credentials.partition(":")
    hostport, _, database = location.partition("/")
    host, _, port = hostport.partition(":")
    return user, password, host, int(port or (5432 if scheme.startswith("postgres") else 3306)), database


async def _reset_postgres(url: str) -> None:
    import asyncpg

    user, password, host, port, database = _parts(url)
    connect = {"user": user, "password": password or None, "host": host, "port": port, "timeout": 5}
    try:
        conn = await asyncpg.connect(database=database, **connect)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(database="postgres", **connect)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(database=database, **connect)
    try:
        await conn.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in TABLES) + " CASCADE")
    finally:
        await conn.close()


async def _reset_mysql(url: str) -> None:
    import asyncmy

    user, password, host, port, database = _parts(url)
    conn = await asyncmy.connect(host=host, port=port, user=user, password=password, connect_timeout=5)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            await cursor.execute(f"USE `{database}`")
            await cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{t}`" for t in TABLES))
    finally:
        conn.close()


def _unavailable(name: str, exc: BaseException) -> None:
    message = f"{name} not reachable ({exc.__class__.__name__}: {exc})"
    if REQUIRE_DBS:
        pytest.fail(message + "; RMF_TASK_SCHEDULER_REQUIRE_DBS=1 makes this a failure")
    pytest.skip(message)


async def clean_database(kind: str, tmp_path: Path) -> str:
    """The URL of an empty database of this kind (sqlite, postgres or mariadb)."""
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'scheduler.sqlite3'}"
    reset, url = (_reset_postgres, POSTGRES_URL) if kind == "postgres" else (_reset_mysql, MYSQL_URL)
    try:
        await asyncio.wait_for(reset(url), timeout=10)
    except (OSError, asyncio.TimeoutError, ImportError) as exc:
        _unavailable(kind, exc)
    except Exception as exc:  # driver-specific connection errors
        if "connect" in str(exc).lower() or "refused" in str(exc).lower():
            _unavailable(kind, exc)
        raise
    return url
