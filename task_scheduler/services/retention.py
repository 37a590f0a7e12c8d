"""Retention: old run history and finished tasks are removed in the background.

Each pass deletes in small batches, one short transaction each, so a purge of months of
history never holds the database (or SQLite's one writer) for long. A finished task goes
only once no run of it is left, so with runs kept forever, tasks that ran are kept too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from task_scheduler.clock import Clock
from task_scheduler.services.wakeup import every
from task_scheduler.storage.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    runs: int = 0
    tasks: int = 0


class Retention:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        runs_days: float | None,
        tasks_days: float | None,
        batch: int = 500,
        poll_s: float = 3600.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._runs = None if runs_days is None else timedelta(days=runs_days)
        self._tasks = None if tasks_days is None else timedelta(days=tasks_days)
        self._batch = batch
        self._poll_s = poll_s

    @property
    def active(self) -> bool:
        return self._runs is not None or self._tasks is not None

    async def run_pass(self) -> Purged:
        """Delete everything past its retention, a batch at a time."""
        now = self._clock.now()
        runs = tasks = 0
        if self._runs is not None:
            while (n := await self._store.purge_runs(now - self._runs, self._batch)) > 0:
                runs += n
                await asyncio.sleep(0)  # let API requests and the dispatcher in between batches
        if self._tasks is not None:
            while (n := await self._store.purge_finished_tasks(now - self._tasks, self._batch)) > 0:
                tasks += n
                await asyncio.sleep(0)
        return Purged(runs=runs, tasks=tasks)

    async def run(self) -> None:
        """A pass at start-up, then one every ``poll_s`` seconds."""

        async def one_pass() -> None:
            purged = await self.run_pass()
            if purged.runs or purged.tasks:
                logger.info("retention removed %d run(s) and %d task(s)", purged.runs, purged.tasks)

        await every(self._poll_s, one_pass, "retention")
