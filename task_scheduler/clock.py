"""The one place the service reads the time and waits for an instant, so tests can drive it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""

    async def sleep_until(self, instant: datetime) -> None:
        """Return once ``now()`` has reached ``instant``, never before."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep_until(self, instant: datetime) -> None:
        # Not polling: the loop's timers run on its monotonic clock, which may be a little
        # ahead of the wall clock's reading of the instant; then one more short sleep.
        while (left := (instant - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)


class FakeClock:
    """A clock that only moves when told to (tests and benchmarks)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._sleepers: list[asyncio.Future[None]] = []
        self._someone_sleeps: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, instant: datetime) -> None:
        while self._now < instant:
            woken = asyncio.get_running_loop().create_future()
            self._sleepers.append(woken)
            self._sleeping_event().set()
            await woken

    async def sleeping(self) -> None:
        """Return once something waits on this clock: a test's cue that a waiter got there."""
        await self._sleeping_event().wait()

    def _sleeping_event(self) -> asyncio.Event:
        if self._someone_sleeps is None:
            self._someone_sleeps = asyncio.Event()
        return self._someone_sleeps

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(timezone.utc)
        self._wake_sleepers()

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)
        self._wake_sleepers()

    def _wake_sleepers(self) -> None:
        """Let every sleeper look at the new time (each goes back to sleep if still early)."""
        sleepers, self._sleepers = self._sleepers, []
        if self._someone_sleeps is not None:
            self._someone_sleeps.clear()
        for woken in sleepers:
            if not woken.done():
                woken.get_loop().call_soon_threadsafe(_resolve, woken)


def _resolve(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
