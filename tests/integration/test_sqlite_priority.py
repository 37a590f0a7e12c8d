"""On SQLite's one connection, the dispatcher's statements pass the API's waiting ones."""

from __future__ import annotations

import asyncio

from task_scheduler.storage.database import Database
from task_scheduler.storage.priority import serve_first
from task_scheduler.storage.sqlite_engine import PrioritySqliteClient
from task_scheduler.storage.store import Store
from tests.integration.conftest import T0


async def turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_dispatcher_statement_goes_before_api_statements_queued_earlier(tmp_path) -> None:
    database = Database(f"sqlite://{tmp_path / 'scheduler.sqlite3'}")
    await database.open(migrate=True)
    try:
        assert database.dialect == "sqlite"
        store = Store()
        order: list[str] = []
        holding, release = asyncio.Event(), asyncio.Event()

        async def api_transaction() -> None:  # holds the connection until released
            async with store.transaction():
                await store.count_due(T0)
                holding.set()
                await release.wait()

        async def api(name: str) -> None:
            await store.count_due(T0)
            order.append(name)

        async def dispatcher() -> None:
            serve_first()
            await store.next_due_at()
            order.append("dispatcher")

        holder = asyncio.create_task(api_transaction())
        await holding.wait()
        waiting = [asyncio.create_task(api("api 1")), asyncio.create_task(api("api 2"))]
        await turns(10)  # both queue for the connection, which is taken (no I/O before that)
        waiting.append(asyncio.create_task(dispatcher()))
        await turns(10)
        assert order == []
        release.set()
        await asyncio.gather(holder, *waiting)
        assert order == ["dispatcher", "api 1", "api 2"]
    finally:
        await database.close()


def test_sqlite_databases_are_opened_with_the_priority_client(tmp_path) -> None:
    settings = Database(f"sqlite://{tmp_path / 'x.sqlite3'}")._config["connections"]["sqlite"]
    assert settings["engine"] == "task_scheduler.storage.sqlite_engine"
    assert settings["credentials"]["synchronous"] == "NORMAL"
    assert PrioritySqliteClient.__module__ == settings["engine"]
