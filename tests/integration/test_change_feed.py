"""Replicas wake each other through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio

import pytest

from task_scheduler.storage.change_feed import ChangeFeed
from tests.databases import clean_database


@pytest.fixture
async def postgres_url(tmp_path) -> str:
    return await clean_database("postgres", tmp_path)


async def test_a_change_on_one_replica_wakes_the_other_not_itself(postgres_url):
    heard = {"a": asyncio.Event(), "b": asyncio.Event()}
    a = ChangeFeed(postgres_url, "replica-a", heard["a"].set)
    b = ChangeFeed(postgres_url, "replica-b", heard["b"].set)
    a.start()
    b.start()
    try:
        assert await a.wait_connected(10) and await b.wait_connected(10)
        heard["a"].clear()
        heard["b"].clear()  # each wakes once on connecting
        a.poke()
        await asyncio.wait_for(heard["b"].wait(), timeout=5)
        assert not heard["a"].is_set()
    finally:
        await a.stop()
        await b.stop()


async def test_the_feed_does_nothing_off_postgres(tmp_path):
    feed = ChangeFeed(f"sqlite://{tmp_path / 'x.sqlite3'}", "r", lambda: None)
    feed.start()
    feed.poke()
    assert not feed.enabled and not await feed.wait_connected(0.01)
    await feed.stop()
