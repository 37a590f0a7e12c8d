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

import asyncmy
import asyncpg
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from task_scheduler.storage import retry
from task_scheduler.storage.database import Database, connection_name
from task_scheduler.storage.orm import TargetRecord
from tests.databases import _parts
from tests.integration.test_api_contract import rule


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
            "SELECT count(*) AS n FROM information_schema.innodb_trx t"
            " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
            " WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID()"
        )
        assert rows[0]["n"] == 0


class Raw:
    """A plain driver connection to the service's database, outside the service."""

    def __init__(self, url: str) -> None:
        self.url, self.postgres = url, url.startswith("postgres")

    async def __aenter__(self) -> Raw:
        if self.postgres:
            self.conn = await asyncpg.connect(self.url)
            await self.conn.execute("SET deadlock_timeout = '30s'")  # the service's check comes first
        else:
            user, password, host, port, database = _parts(self.url)
            self.conn = await asyncmy.connect(
                host=host, port=port, user=user, password=password, database=database, autocommit=True
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close() if self.postgres else self.conn.close()

    async def value(self, sql: str) -> object:
        if self.postgres:
            return await self.conn.fetchval(sql)
        async with self.conn.cursor() as cursor:
            await cursor.execute(sql)
            row = await cursor.fetchone() if cursor.description else None
            return row[0] if row else None


async def service_waits_for_a_lock(raw: Raw) -> bool:
    sql = (
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
        if raw.postgres
        else "SELECT count(*) FROM information_schema.innodb_trx t"
        " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
        " WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE() AND p.id <> CONNECTION_ID()"
    )
    return await raw.value(sql) > 0


@pytest.mark.parametrize("db_url", ["postgres", "mariadb"], indirect=True)
async def test_an_api_change_that_loses_a_deadlock_is_retried_and_answers_200(service, db_url, caplog):
    """Disabling a rule locks the rule, then deletes its tasks; another session holding the
    tasks asks for the rule: the disable loses, runs again after the other commits, and the
    client sees only its 200."""
    caplog.set_level(logging.WARNING, logger=retry.__name__)
    created = await service.http.post("/rules", json=rule("lobby"))
    rule_id = created.json()["id"]
    async with Raw(db_url) as raw:
        await raw.value("BEGIN")
        await raw.value(f"UPDATE tasks SET status_reason = 'theirs' WHERE rule_id = {rule_id}")
        disabling = asyncio.create_task(service.http.post(f"/rules/{rule_id}/disable"))
        async with asyncio.timeout(20):
            while not await service_waits_for_a_lock(raw):
                assert not disabling.done(), (await disabling).text
                # InnoDB refreshes innodb_trx only when it was not read for 0.1 s.
                await asyncio.sleep(0.2)
            await raw.value(f"UPDATE rules SET description = 'theirs' WHERE id = {rule_id}")
            await raw.value("COMMIT")
            disabled = await disabling
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert "RuleService.set_enabled met a deadlock" in caplog.text
    assert (await service.http.get(f"/rules/{rule_id}")).json()["description"] == "theirs"
