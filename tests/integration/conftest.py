"""Shared fixtures: real databases (SQLite, PostgreSQL, MariaDB), each test on a clean one.

PostgreSQL and MariaDB are found at ``TEST_POSTGRES_URL`` and ``TEST_MYSQL_URL``
(defaults: the local test servers).  Where one is not reachable its tests skip with the
reason, unless ``RMF_TASK_SCHEDULER_REQUIRE_DBS=1`` (set by CI) turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import pytest

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306/test")
REQUIRE_DBS = os.environ.get("RMF_TASK_SCHEDULER_REQUIRE_DBS") == "1"
TABLES = ("tasks", "rules", "aerich")

# A Monday, away from any DST change, so tests never depend on the day they run.
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


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


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A clean database of each kind, as a URL for the service."""
    kind = request.param
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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@dataclass
class Service:
    """An app on a real database, with its clock and an HTTP client talking to it in-process."""

    app: object
    clock: FakeClock
    http: httpx.AsyncClient

    async def expand(self) -> int:
        return await self.app.state.expander.run_pass()


@pytest.fixture
async def service(db_url: str, clock: FakeClock) -> AsyncIterator[Service]:
    settings = build_settings({"db_url": db_url, "timezone": "UTC"}, environ={})
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            yield Service(app=app, clock=clock, http=http)
