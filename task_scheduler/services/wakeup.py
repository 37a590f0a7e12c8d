"""What the background loops share: a level-triggered wake-up (they sleep until their next
due time or until poked), and telling a cancellation from a failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


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


async def every(poll_s: float, one_pass: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``one_pass`` now and then every ``poll_s`` seconds, forever. A failed pass is
    logged and retried at the next period; a cancellation (also one a driver turned into
    its own error) ends the loop."""
    while True:
        try:
            await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if being_cancelled():
                raise asyncio.CancelledError from exc
            logger.exception("%s pass failed; retrying after the poll period", what)
        await asyncio.sleep(poll_s)
