"""What the background loops share: a level-triggered wake-up (they sleep until their next
due time or until poked), and telling a cancellation from a failure."""

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


def being_cancelled() -> bool:
    """Whether the running task has been asked to stop. A database driver interrupted by the
    cancellation may raise its own error instead (asyncmy does, from its rollback); a loop
    that retried after that would never stop."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11 and later; 3.10 cannot tell
    return cancelling is not None and cancelling() > 0
