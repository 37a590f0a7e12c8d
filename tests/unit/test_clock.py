"""Waiting for an instant: never returns early, on the system clock or on the fake one."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from task_scheduler.clock import FakeClock, SystemClock

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


async def test_the_system_clock_wakes_at_the_instant_not_before() -> None:
    clock = SystemClock()
    for _ in range(20):
        instant = clock.now() + timedelta(milliseconds=3)
        await clock.sleep_until(instant)
        assert clock.now() >= instant


async def test_an_instant_already_past_returns_at_once() -> None:
    clock = FakeClock(T0)
    await asyncio.wait_for(clock.sleep_until(T0), 1)
    await asyncio.wait_for(SystemClock().sleep_until(T0), 1)


async def test_a_fake_clock_sleeper_wakes_only_once_moved_to_its_instant() -> None:
    clock = FakeClock(T0)
    woke: list[datetime] = []

    async def sleeper(instant: datetime) -> None:
        await clock.sleep_until(instant)
        woke.append(clock.now())

    late, early = (asyncio.create_task(sleeper(T0 + timedelta(seconds=s))) for s in (2, 1))
    await clock.sleeping()
    clock.advance(seconds=0.5)
    await clock.sleeping()  # both looked at the new time and went back to sleep
    assert woke == []
    clock.set(T0 + timedelta(seconds=1))
    await early
    assert woke == [T0 + timedelta(seconds=1)] and not late.done()
    clock.advance(seconds=5)
    await late
    assert woke[1] == T0 + timedelta(seconds=6)
