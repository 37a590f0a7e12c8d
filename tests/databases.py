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

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306/test")
REQUIRE_DBS = os.environ.get("RMF_TASK_SCHEDULER_REQUIRE_DBS") == "1"
TABLES = ("runs", "targets", "tasks", "rules", "aerich")


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=5)
    try:
        await conn.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in TABLES) + " CASCADE")
    finally:
        await conn.close()


async def _reset_mysql(url: str) -> None:
    import asyncmy

    rest = url.split("://", 1)[1]
    credentials, location = rest.rsplit("@", 1)
    user, _, password = credentials.partition(":")
    hostport, _, database = location.partition("/")
    host, _, port = hostport.partition(":")
    conn = await asyncmy.connect(
        host=host, port=int(port or 3306), user=user, password=password, db=database, connect_timeout=5
    )
    try:
        async with conn.cursor() as cursor:
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
