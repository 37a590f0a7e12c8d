"""Real databases for the tests: SQLite files, and the PostgreSQL and MariaDB servers.

PostgreSQL and MariaDB are found at ``TEST_POSTGRES_URL`` and ``TEST_MYSQL_URL``
(defaults: the local test servers).  Where one is not reachable its tests skip with the
reason, unless ``RMF_TASK_SCHEDULER_REQUIRE_DBS=1`` (set by CI) turns the skip into a failure.
Each test gets a clean database: empty tables with the schema the migrations make (see
``_pristine``).
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


DATA_TABLES = tuple(t for t in TABLES if t != "aerich")
_pristine: dict[str, tuple] = {}
"""Per database URL: the schema (migrations applied, columns, indexes) as the migrations
made it from scratch in this run. While a database still has exactly that schema, a test
gets it with its tables emptied (much faster than dropping and migrating again, on MariaDB
above all); a test that changed the schema (the migration tests) leaves it different, and
the next test gets a fresh one."""


async def _fresh_schema(url: str, fingerprint) -> None:
    """Migrate an empty database from scratch, and remember the schema it ends with."""
    from task_scheduler.storage.database import Database

    database = Database(url)
    await database.open(migrate=True)
    await database.close()
    _pristine[url] = await fingerprint(url)


async def _pg_connect(url: str):
    import asyncpg

    user, password, host, port, database = _parts(url)
    connect = {"user": user, "password": password or None, "host": host, "port": port, "timeout": 5}
    try:
        return await asyncpg.connect(database=database, **connect)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(database="postgres", **connect)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        return await asyncpg.connect(database=database, **connect)


async def _pg_fingerprint(url: str, conn=None) -> tuple:
    own = conn is None
    conn = conn or await _pg_connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY($1::text[]) ORDER BY 1, 2",
            list(TABLES),
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY($1::text[]) ORDER BY 1, 2",
            list(TABLES),
        )
        migrated = any(row[0] == "aerich" for row in columns)  # a run killed mid-migration may have none
        versions = await conn.fetch('SELECT version FROM "aerich" ORDER BY 1') if migrated else []
        return tuple(tuple(r) for r in [*columns, *indexes, *versions])
    finally:
        if own:
            await conn.close()


async def _reset_postgres(url: str) -> None:
    conn = await _pg_connect(url)
    try:
        if url in _pristine and await _pg_fingerprint(url, conn) == _pristine[url]:
            await conn.execute(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in DATA_TABLES) + " RESTART IDENTITY CASCADE"
            )
            return
        await conn.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in TABLES) + " CASCADE")
    finally:
        await conn.close()
    await _fresh_schema(url, _pg_fingerprint)


async def _mysql_connect(url: str):
    import asyncmy

    user, password, host, port, database = _parts(url)
    conn = await asyncmy.connect(host=host, port=port, user=user, password=password, connect_timeout=5)
    async with conn.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        await cursor.execute(f"USE `{database}`")
    return conn


async def _mysql_fingerprint(url: str, conn=None) -> tuple:
    own = conn is None
    conn = conn or await _mysql_connect(url)
    try:
        async with conn.cursor() as cursor:
            names = ", ".join(f"'{t}'" for t in TABLES)
            await cursor.execute(
                "SELECT table_name, column_name, column_type, is_nullable, column_default "
                "FROM information_schema.columns "
                f"WHERE table_schema = DATABASE() AND table_name IN ({names}) ORDER BY 1, 2"
            )
            columns = await cursor.fetchall()
            await cursor.execute(
                "SELECT table_name, index_name, column_name, non_unique FROM information_schema.statistics "
                f"WHERE table_schema = DATABASE() AND table_name IN ({names}) ORDER BY 1, 2, 3"
            )
            indexes = await cursor.fetchall()
            versions = []
            if any(row[0] == "aerich" for row in columns):  # a run killed mid-migration may have none
                await cursor.execute("SELECT version FROM `aerich` ORDER BY 1")
                versions = await cursor.fetchall()
        return tuple(tuple(r) for r in [*columns, *indexes, *versions])
    finally:
        if own:
            conn.close()


async def _reset_mysql(url: str) -> None:
    conn = await _mysql_connect(url)
    try:
        async with conn.cursor() as cursor:
            if url in _pristine and await _mysql_fingerprint(url, conn) == _pristine[url]:
                for table in DATA_TABLES:  # TRUNCATE also restarts the ids at 1
                    await cursor.execute(f"TRUNCATE TABLE `{table}`")
                return
            await cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{t}`" for t in TABLES))
    finally:
        conn.close()
    await _fresh_schema(url, _mysql_fingerprint)


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
