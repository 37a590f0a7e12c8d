"""A level-triggered wake-up: loops sleep until their next due time or until poked."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if poked meanwhile (the poke is consumed)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=max(timeout, 0.0))
        poked = self._event.is_set()
        self._event.clear()
        return poked
