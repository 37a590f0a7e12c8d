"""Deadlocks are retried: two transactions lock rows in opposite order on a real server.

Each side, under ``retried``, locks its own row, waits until the other has locked its
own, then asks for the other's: a cycle. The server breaks it by rolling one side back;
``retried`` runs that side again once the other has committed, and both succeed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from task_scheduler.storage import retry
from task_scheduler.storage.database import Database, connection_name
from task_scheduler.storage.orm import TargetRecord


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[str]:
    database = Database(db_url)
    await database.open(migrate=True)
    now = datetime(2026, 1, 5, tzinfo=timezone.utc)
    for name in ("a", "b"):
        await TargetRecord.create(name=name, kind="http", config={}, created_at=now, updated_at=now)
    try:
        yield db_url
    finally:
        await database.close()


@pytest.mark.parametrize("db_url", ["postgres", "mariadb"], indirect=True)
async def test_work_that_loses_a_deadlock_runs_again_and_succeeds(database, caplog):
    url = database
    tries = {"a": 0, "b": 0}
    locked = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def side(mine: str, theirs: str) -> str:
        tries[mine] += 1
        async with in_transaction(connection_name(url)) as tx:
            if url.startswith("postgres"):  # find the cycle at once, not after a second
                await tx.execute_script("SET LOCAL deadlock_timeout = '50ms'")
            await tx.execute_query(f"UPDATE targets SET kind = '{mine}' WHERE name = '{mine}'")
            if tries[mine] == 1:
                locked[mine].set()
                await locked[theirs].wait()
            await tx.execute_query(f"UPDATE targets SET kind = '{mine}' WHERE name = '{theirs}'")
        return mine

    caplog.set_level(logging.WARNING, logger=retry.__name__)
    async with asyncio.timeout(20):
        done = await asyncio.gather(
            retry.retried(lambda: side("a", "b"), "a"), retry.retried(lambda: side("b", "a"), "b")
        )

    assert done == ["a", "b"]
    assert sorted(tries.values()) == [1, 2], tries  # one side lost once, and only once
    loser = "a" if tries["a"] == 2 else "b"
    kinds = dict(await TargetRecord.all().values_list("name", "kind"))
    assert kinds == {"a": loser, "b": loser}  # the loser's second try committed last
    assert f"{loser} met a deadlock" in caplog.text
    if url.startswith("mysql"):  # nothing left open on the pool's connections
        _, rows = await connections.get(connection_name(url)).execute_query(
            "SELECT count(*) AS n FROM information_schema.innodb_trx"
        )
        assert rows[0]["n"] == 0
