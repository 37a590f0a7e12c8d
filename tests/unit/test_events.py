"""The event bus: fan-out, channel filters, bounded consumers, failing subscribers, shutdown."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from datetime import date, datetime, timedelta, timezone

import pytest
from reactivex import operators as ops

from task_scheduler.events import Event, EventBus, EventSubscription, EventType

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
DEADLINE = 2.0


def event(n: int = 0, *, channel: str | None = "lobby", kind: EventType = EventType.task_dispatched) -> Event:
    return Event(type=kind, at=T0 + timedelta(seconds=n), rule_id=7, task_id=f"t{n}", channel=channel)


async def take(subscription: EventSubscription, count: int) -> list[Event]:
    async def collect() -> list[Event]:
        return [await anext(subscription) for _ in range(count)]

    return await asyncio.wait_for(collect(), DEADLINE)


async def ends(subscription: EventSubscription) -> bool:
    """True if the iteration ends (within the deadline) without yielding anything more."""
    try:
        await asyncio.wait_for(anext(subscription), DEADLINE)
    except StopAsyncIteration:
        return True
    return False


# --- Event ----------------------------------------------------------------------------


class Colour(enum.Enum):
    red = "red"


def test_to_json_has_every_key_iso_utc_times_and_plain_data() -> None:
    paris = timezone(timedelta(hours=1))
    e = Event(
        type=EventType.run_finished,
        at=datetime(2026, 1, 5, 13, 0, 0, 250000, tzinfo=paris),
        rule_id=3,
        task_id="r3@2026-01-05T12:00:00Z",
        channel="floor-1",
        data={
            "outcome": "succeeded",
            "occurrence": datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc),
            "day": date(2026, 1, 5),
            "colour": Colour.red,
            "kind": EventType.task_failed,
            "attempts": (1, 2),
            "response": {"state": {"booking": {"id": "clean.dispatch-1"}}},
        },
    )

    body = e.to_json()

    assert body == {
        "type": "run.finished",
        "at": "2026-01-05T12:00:00.250000Z",
        "rule_id": 3,
        "task_id": "r3@2026-01-05T12:00:00Z",
        "channel": "floor-1",
        "data": {
            "outcome": "succeeded",
            "occurrence": "2026-01-05T12:00:00Z",
            "day": "2026-01-05",
            "colour": "red",
            "kind": "task.failed",
            "attempts": [1, 2],
            "response": {"state": {"booking": {"id": "clean.dispatch-1"}}},
        },
        "replica": None,
    }
    assert json.loads(json.dumps(body)) == body
    assert Event(type=EventType.rule_created, at=T0).to_json() == {
        "type": "rule.created",
        "at": "2026-01-05T12:00:00Z",
        "rule_id": None,
        "task_id": None,
        "channel": None,
        "data": {},
        "replica": None,
    }


def test_event_keeps_utc_copies_data_and_accepts_the_type_value() -> None:
    data = {"n": 1}
    e = Event(type="rule.paused", at=T0.astimezone(timezone(timedelta(hours=-5))), data=data)  # type: ignore[arg-type]
    data["n"] = 2

    assert e.type is EventType.rule_paused
    assert e.at.utcoffset() == timedelta(0) and e.at == T0
    assert e.data == {"n": 1}
    with pytest.raises(TypeError):
        e.data["n"] = 3  # type: ignore[index]
    e.to_json()["data"]["n"] = 4
    assert e.to_json()["data"] == {"n": 1}


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"at": datetime(2026, 1, 5, 12, 0)}, ValueError, "timezone-aware"),
        ({"type": "rule.exploded"}, ValueError, "rule.exploded"),
        ({"data": {"when": datetime(2026, 1, 5, 12, 0)}}, TypeError, r"data\.when: naive"),
        ({"data": {"x": [1, object()]}}, TypeError, r"data\.x\[1\]: object"),
        ({"data": {"x": float("nan")}}, TypeError, "not a JSON number"),
        ({"data": {"x": ({"y": {2: [0, object()]}},)}}, TypeError, r"data\.x\[0\]\.y\.2\[1\]: object"),
    ],
)
def test_a_bad_event_fails_where_it_is_made(changes: dict, error: type[Exception], match: str) -> None:
    fields = {"type": EventType.rule_created, "at": T0, **changes}
    with pytest.raises(error, match=match):
        Event(**fields)


# --- EventBus and subscriptions --------------------------------------------------------


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe_queue(), bus.subscribe_queue()
    seen: list[Event] = []
    bus.stream.subscribe(seen.append)
    events = [event(n) for n in range(3)]

    for e in events:
        bus.publish(e)

    assert await take(first, 3) == events
    assert await take(second, 3) == events
    assert seen == events


async def test_a_subscription_sees_only_what_is_published_after_it() -> None:
    bus = EventBus()
    bus.publish(event(0))
    subscription = bus.subscribe_queue()
    bus.publish(event(1))

    assert await take(subscription, 1) == [event(1)]


async def test_a_waiting_consumer_wakes_when_an_event_is_published() -> None:
    bus = EventBus()
    subscription = bus.subscribe_queue()
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)  # let it start waiting: an ordering step, not a wait for time
    assert not waiting.done()

    bus.publish(event(1))

    assert await asyncio.wait_for(waiting, DEADLINE) == event(1)


async def test_a_channel_subscription_sees_only_its_channel() -> None:
    bus = EventBus()
    lobby, everything = bus.subscribe_queue(channel="lobby"), bus.subscribe_queue()
    published = [event(0, channel="lobby"), event(1, channel="kitchen"), event(2, channel=None)]
    published.append(event(3, channel="lobby"))

    for e in published:
        bus.publish(e)

    assert await take(lobby, 2) == [published[0], published[3]]
    assert await take(everything, 4) == published


async def test_a_consumer_that_falls_behind_is_cut_off_and_the_others_carry_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    slow, other = bus.subscribe_queue(maxsize=3), bus.subscribe_queue(maxsize=10)

    with caplog.at_level(logging.WARNING, logger="task_scheduler.events"):
        for n in range(4):  # the fourth finds the slow buffer full
            bus.publish(event(n))

    assert slow.overflowed and not slow.completed
    assert await ends(slow)  # at once: its buffered events are dropped, it has a gap anyway
    assert "3 events behind" in caplog.text
    assert bus.subscriber_count == 1  # the slow one let go of the bus
    bus.publish(event(4))
    assert [e.task_id for e in await take(other, 5)] == ["t0", "t1", "t2", "t3", "t4"]


async def test_events_on_other_channels_do_not_fill_a_filtered_buffer() -> None:
    bus = EventBus()
    subscription = bus.subscribe_queue(channel="lobby", maxsize=1)

    for n in range(5):
        bus.publish(event(n, channel="kitchen"))
    bus.publish(event(5, channel="lobby"))

    assert not subscription.overflowed
    assert await take(subscription, 1) == [event(5, channel="lobby")]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        EventBus().subscribe_queue(maxsize=0)


async def test_a_raising_subscriber_is_logged_and_dropped_and_publish_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    before = bus.subscribe_queue()
    calls: list[Event] = []

    def broken(e: Event) -> None:
        calls.append(e)
        raise RuntimeError("subscriber bug")

    bus.stream.subscribe(broken)
    bus.stream.pipe(ops.map(lambda e: 1 / 0)).subscribe(lambda _: None)  # an error it never handles
    after = bus.subscribe_queue()

    with caplog.at_level(logging.ERROR, logger="task_scheduler.events"):
        bus.publish(event(0))  # does not raise
        bus.publish(event(1))

    assert calls == [event(0)]  # dropped after its first failure
    assert caplog.text.count("event subscriber failed") == 2
    assert "subscriber bug" in caplog.text and "ZeroDivisionError" in caplog.text
    assert await take(before, 2) == [event(0), event(1)]
    assert await take(after, 2) == [event(0), event(1)]
    assert bus.subscriber_count == 2


async def test_close_completes_the_stream_after_buffered_events() -> None:
    bus = EventBus()
    subscription = bus.subscribe_queue()
    completed: list[bool] = []
    bus.stream.subscribe(on_completed=lambda: completed.append(True))
    waiting_one = bus.subscribe_queue()
    waiting = asyncio.ensure_future(anext(waiting_one))
    await asyncio.sleep(0)  # ordering step: the consumer is now parked on the empty buffer
    bus.publish(event(0))
    assert await asyncio.wait_for(waiting, DEADLINE) == event(0)
    waiting = asyncio.ensure_future(anext(waiting_one))
    await asyncio.sleep(0)

    bus.close()
    bus.close()  # idempotent
    bus.publish(event(1))  # dropped, quietly

    assert bus.closed and completed == [True]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, DEADLINE)
    assert await take(subscription, 1) == [event(0)]
    assert await ends(subscription)
    assert subscription.completed and not subscription.overflowed
    assert await ends(bus.subscribe_queue())  # subscribing to a closed bus ends at once
    assert bus.subscriber_count == 0


async def test_closing_a_subscription_ends_it_and_releases_the_bus() -> None:
    bus = EventBus()
    subscription = bus.subscribe_queue()
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)
    assert bus.subscriber_count == 1

    subscription.close()
    subscription.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, DEADLINE)
    assert bus.subscriber_count == 0
    bus.publish(event(0))
    assert await ends(subscription)


async def test_async_for_reads_until_the_bus_closes() -> None:
    bus = EventBus()
    subscription = bus.subscribe_queue()
    for n in range(3):
        bus.publish(event(n))
    bus.close()

    async def read_all() -> list[str | None]:
        return [e.task_id async for e in subscription]

    assert await asyncio.wait_for(read_all(), DEADLINE) == ["t0", "t1", "t2"]
