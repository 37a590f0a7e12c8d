"""Replicas wake each other through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import pytest

from task_scheduler.events import Event, EventType
from task_scheduler.storage.change_feed import ChangeFeed, pack
from tests.databases import clean_database


@pytest.fixture
async def postgres_url(tmp_path) -> str:
    return await clean_database("postgres", tmp_path)


@contextlib.asynccontextmanager
async def two_replicas(
    postgres_url: str, on_a: Callable[[Event], None] | None, on_b: Callable[[Event], None]
) -> AsyncIterator[tuple[ChangeFeed, ChangeFeed]]:
    """The feeds of replicas a and b, listening; each hands the events it hears to its ``on_``."""
    a = ChangeFeed(postgres_url, "replica-a", lambda: None, on_event=on_a)
    b = ChangeFeed(postgres_url, "replica-b", lambda: None, on_event=on_b)
    a.start()
    b.start()
    try:
        assert await a.wait_connected(10) and await b.wait_connected(10)
        yield a, b
    finally:
        await a.stop()
        await b.stop()


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


async def test_each_replicas_events_reach_the_other_once_marked_with_their_replica(postgres_url):
    heard: dict[str, list[Event]] = {"a": [], "b": []}
    marked = {"a": asyncio.Event(), "b": asyncio.Event()}

    def on(name: str):
        def append(event: Event) -> None:
            heard[name].append(event)
            if event.rule_id == 99:  # the last event sent: what was sent before has arrived
                marked[name].set()

        return append

    async with two_replicas(postgres_url, on("a"), on("b")) as (a, b):
        at = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
        big = {"response": "x" * 9000}
        sent = [
            Event(
                type=EventType.task_dispatched, at=at, rule_id=1, task_id="1-20260105T120000Z", channel="ops"
            ),
            Event(type=EventType.run_finished, at=at, rule_id=1, task_id="1-20260105T120000Z", data=big),
            Event(type=EventType.rule_created, at=at, rule_id=2, data={"name": "lobby"}),
        ]
        for event in sent:
            a.relay(event)
        a.relay(
            Event(type=EventType.rule_created, at=at, replica="replica-c")
        )  # heard, not ours: not sent on
        marker = Event(type=EventType.rule_deleted, at=at, rule_id=99)
        a.relay(marker)
        await asyncio.wait_for(marked["b"].wait(), timeout=5)
        b.relay(marker)  # after a's own: had a heard itself, that would come first
        await asyncio.wait_for(marked["a"].wait(), timeout=5)
        assert [(e.rule_id, e.replica) for e in heard["a"]] == [(99, "replica-b")]
        assert heard["b"].pop().rule_id == 99
        assert [(e.type, e.rule_id, e.task_id, e.channel, e.replica) for e in heard["b"]] == [
            (e.type, e.rule_id, e.task_id, e.channel, "replica-a") for e in sent
        ]
        assert dict(heard["b"][1].data) == {"truncated": True}
        assert dict(heard["b"][2].data) == {"name": "lobby"} and heard["b"][2].at == at


async def test_a_burst_of_events_over_several_notifications_arrives_whole_and_in_order(postgres_url):
    heard: list[Event] = []
    done = asyncio.Event()

    def on_b(event: Event) -> None:
        heard.append(event)
        if event.rule_id == 99:
            done.set()

    async with two_replicas(postgres_url, None, on_b) as (a, _):
        at = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
        burst = [
            Event(type=EventType.run_finished, at=at, rule_id=1, task_id=f"task-{n}", data={"pad": "x" * 500})
            for n in range(100)
        ]
        assert len(pack("replica-a", [event.to_text() for event in burst])) > 3
        for event in burst:
            a.relay(event)
        a.relay(Event(type=EventType.rule_deleted, at=at, rule_id=99))
        await asyncio.wait_for(done.wait(), timeout=5)
        assert [event.task_id for event in heard[:-1]] == [event.task_id for event in burst]
