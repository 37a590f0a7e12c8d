"""A database that cannot serve: 503 with the reason (never 500, never a driver's words),
``/readyz`` not ready, and back to normal without a restart once it can serve again.

Real faults on the service's own connection: SQLite's ``max_page_count`` makes the file
full (SQLITE_FULL, as a full disk does), ``query_only`` makes it read-only
(SQLITE_READONLY); PostgreSQL stops taking connections to the test's own database.
"""

from __future__ import annotations

import asyncpg
import pytest
from tortoise import connections
from tortoise.exceptions import OperationalError

from tests.databases import POSTGRES_URL, _parts
from tests.integration.test_api_contract import rule


async def sqlite(sql: str) -> list:
    _, rows = await connections.get("sqlite").execute_query(sql)
    return rows


async def fill_up() -> int:
    """Let the file grow by a few pages only, and write until none is left; the page limit."""
    pages = (await sqlite("PRAGMA page_count"))[0][0]
    await sqlite(f"PRAGMA max_page_count = {pages + 8}")
    await sqlite("CREATE TABLE filler (b BLOB)")
    size = 1 << 16
    while size:
        try:
            await sqlite(f"INSERT INTO filler VALUES (zeroblob({size}))")
        except OperationalError:
            size //= 2
    return pages + 8


async def assert_unavailable(service, reason: str) -> None:
    # Long enough to need pages of its own, as any write does sooner or later.
    refused = await service.http.post("/rules", json=rule("refused", description="x" * 10_000))
    assert refused.status_code == 503, refused.text
    assert refused.json() == {"detail": f"the database is {reason}; retry later"}
    assert refused.headers["retry-after"] == "5"
    ready = await service.http.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["reason"] == reason and ready.json()["writable"] is False


async def assert_serving(service, name: str) -> None:
    ready = await service.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert (ready.json()["reason"], ready.json()["writable"]) == (None, True)
    created = await service.http.post("/rules", json=rule(name))
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_full_sqlite_file_is_not_ready_and_refuses_writes_until_it_has_room(service):
    await assert_serving(service, "before")
    limit = await fill_up()
    await assert_unavailable(service, "full")
    assert (await service.http.get("/rules")).status_code == 200  # reads still work

    await sqlite(f"PRAGMA max_page_count = {limit * 4}")  # space freed
    await assert_serving(service, "after")
    assert [r["name"] for r in (await service.http.get("/rules")).json()["items"]] == ["before", "after"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_read_only_sqlite_file_is_not_ready_and_refuses_writes_until_writable(service):
    await sqlite("PRAGMA query_only = ON")
    await assert_unavailable(service, "read-only")
    await sqlite("PRAGMA query_only = OFF")  # permissions restored
    await assert_serving(service, "after")


async def _allow_connections(database: str, allow: bool) -> None:
    user, password, host, port, _ = _parts(POSTGRES_URL)
    admin = await asyncpg.connect(
        user=user, password=password or None, host=host, port=port, database="postgres"
    )
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
            )
    finally:
        await admin.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_postgres_database_that_goes_away_is_answered_503_and_served_again_when_back(service):
    database = _parts(POSTGRES_URL)[4]
    await assert_serving(service, "before")
    await _allow_connections(database, False)
    try:
        for _ in range(2):  # the connections cut, then the new ones refused
            listed = await service.http.get("/rules")
            assert listed.status_code == 503, listed.text
            assert listed.json() == {"detail": "the database is unreachable; retry later"}
        ready = await service.http.get("/readyz")
        assert ready.status_code == 503
        assert (ready.json()["database"], ready.json()["reason"]) == (False, "unreachable")
    finally:
        await _allow_connections(database, True)
    await assert_serving(service, "after")
