"""What an attempt's answer makes of its task, and recording it: in groups, never lost to
a database outage.

Every dispatch that finishes hands its outcome (a ``Settlement``) to the settler and waits
for it to be recorded. Outcomes that arrive within ``WINDOW_S`` of each other, or while the
previous group is being written, are recorded together in a few multi-row statements
(``Store.settle``: one on PostgreSQL), instead of a transaction of four or five round
trips each.

Nothing is recorded before the fleet has answered: a dispatch hands its outcome over only
then. If the write fails (the database dropped), the group stays in memory and is written
again, with backoff, until it goes through. Memory stays bounded: each outcome waiting is
a dispatch still in flight, and those are at most ``dispatch_concurrency``. A crash loses
what was waiting; those tasks are still claimed, and whoever takes them over once their
lease ends asks the fleet by label before sending anything again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from random import Random
from typing import Any

from task_scheduler.domain.policy import retry_at, retry_unreachable_at
from task_scheduler.domain.rules import Policy
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.services.wakeup import being_cancelled
from task_scheduler.storage.claimed import ClaimedTask, DispatchRule
from task_scheduler.storage.store import Settled, Settlement, Store
from task_scheduler.transports.base import Delivery, Outcome

logger = logging.getLogger(__name__)

WINDOW_S = 0.002
"""How long the first outcome of a group waits for others finishing at about the same time."""
MOST = 1000
"""The most outcomes one transaction records."""
RETRY_S, RETRY_MAX_S = 0.1, 5.0
"""After a failed write: the first wait before writing again, and the longest (it doubles)."""


def settlement(
    task: ClaimedTask,
    rule: DispatchRule | None,
    policy: Policy,
    delivery: Delivery,
    finished: datetime,
    *,
    resendable: bool,
    rng: Random,
) -> Settlement:
    """What an attempt's answer makes of its task: dispatched, a retry, missed (an outage
    past the grace) or failed. ``resendable``: an unclear answer may be followed by
    another attempt (the fleet can be asked first, or a second copy does no harm)."""
    if delivery.outcome is Outcome.SUCCEEDED:
        # Only a rule with failures on record needs its count reset.
        reset = False if rule is not None and rule.consecutive_failures else None
        return Settlement(
            task.id,
            task.rule_id,
            TaskStatus.dispatched.value,
            None,
            finished,
            fleet_task_id=delivery.fleet_task_id,
            rule_failed=reset,
        )
    why = f"attempt {task.attempts}: {delivery.outcome.value}" + (
        f" ({delivery.error})" if delivery.error else ""
    )
    when = {"attempt": task.attempts, "now": finished, "scheduled_at": task.scheduled_at, "rng": rng}
    retry = None
    if not delivery.reached:
        retry = retry_unreachable_at(policy, **when)
    elif delivery.outcome is not Outcome.REJECTED and (resendable or not delivery.ambiguous):
        retry = retry_at(policy, **when)
    if retry is not None:
        return Settlement(
            task.id,
            task.rule_id,
            TaskStatus.scheduled.value,
            f"{why}; retrying"[:255],
            finished,
            due_at=retry,
        )
    if not delivery.reached:
        # An outage, not a fault of this rule: missed, and no step towards pausing it.
        reason = f"the fleet stayed unreachable past the misfire grace; last {why}"
        return Settlement(task.id, task.rule_id, TaskStatus.missed.value, reason[:255], finished)
    return Settlement(task.id, task.rule_id, TaskStatus.failed.value, why[:255], finished, rule_failed=True)


def run_row(
    task: ClaimedTask, delivery: Delivery, started: datetime, finished: datetime, replica: str
) -> dict[str, Any]:
    """An attempt as its run is stored."""
    return {
        "task_id": task.id,
        "rule_id": task.rule_id,
        "attempt": task.attempts,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": (finished - started).total_seconds() * 1000,
        "outcome": delivery.outcome.value,
        "fleet_task_id": delivery.fleet_task_id,
        # A JSON column: keep text answers (error pages, excerpts) as text, not as JSON to parse.
        "response": {"text": delivery.response} if isinstance(delivery.response, str) else delivery.response,
        "error": delivery.error,
        "replica": replica,
    }


class Settler:
    """Hands outcomes to the store in groups, and keeps them until they are recorded."""

    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self._owner = owner
        self._waiting: list[tuple[Settlement, asyncio.Future[Settled | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Outcomes not yet recorded."""
        return len(self._waiting)

    async def settle(self, outcome: Settlement) -> Settled | None:
        """Record an outcome with the others finishing now; None when the claim was lost
        (its run is recorded all the same)."""
        recorded: asyncio.Future[Settled | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, recorded))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="settle")
        # A dispatch cancelled meanwhile (shutdown) leaves its outcome to be written.
        return await asyncio.shield(recorded)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for what is waiting to be recorded (on shutdown)."""
        if self._writer is not None and not self._writer.done():
            done, _ = await asyncio.wait({self._writer}, timeout=timeout)
            if not done:
                logger.error("%d outcome(s) could not be recorded before shutdown", self.waiting)
                self._writer.cancel()

    async def _write(self) -> None:
        await asyncio.sleep(WINDOW_S)
        wait_s, failing = RETRY_S, False
        while self._waiting:
            group = self._waiting[:MOST]
            try:
                settled = await self._store.settle([outcome for outcome, _ in group], self._owner)
            except Exception as exc:
                if being_cancelled():
                    raise asyncio.CancelledError from exc
                if not failing:
                    logger.exception("could not record %d outcome(s); keeping them to retry", len(group))
                else:
                    logger.warning(
                        "still cannot record %d outcome(s) (%s); retrying in %.1f s",
                        self.waiting,
                        exc,
                        wait_s,
                    )
                failing = True
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, RETRY_MAX_S)
                continue
            if failing:
                logger.info("recorded the %d outcome(s) kept through a database outage", len(group))
                wait_s, failing = RETRY_S, False
            del self._waiting[: len(group)]
            for (_, recorded), result in zip(group, settled, strict=True):
                if not recorded.done():
                    recorded.set_result(result)
