"""The expander stores each enabled rule's occurrences for a rolling horizon.

Storing is idempotent (unique rule and original time; conflicts are ignored), so a pass
that runs twice, or on two replicas, stores each occurrence once.  A rule stores at most
``batch`` occurrences per pass, so creating any rule costs the same whatever its length;
``expanded_until`` remembers where the rule's stored occurrences end and the next pass
continues from there, also after downtime, so occurrences missed while the service was
down are stored and left for the dispatcher's misfire policy rather than dropped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from itertools import islice

from task_scheduler.clock import Clock
from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.events import Event, EventBus, EventType
from task_scheduler.services.occurrences import new_task_record, recurrence_of
from task_scheduler.services.wakeup import every
from task_scheduler.storage.orm import RuleRecord
from task_scheduler.storage.store import Store

logger = logging.getLogger(__name__)

# Stored as ``expanded_until`` once a rule has no occurrence left (end or count reached).
EXHAUSTED = datetime(9999, 1, 1, tzinfo=timezone.utc)
_RULES_PER_QUERY = 500


class Expander:
    def __init__(
        self, store: Store, clock: Clock, events: EventBus, *, horizon_s: int, batch: int, poll_s: float
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._horizon = timedelta(seconds=horizon_s)
        self._batch = batch
        self._poll_s = poll_s

    def plan(self, recurrence: Recurrence, since: datetime, now: datetime) -> tuple[list[datetime], datetime]:
        """The occurrences after ``since`` to store now (one batch at most), and where they end."""
        horizon_end = now + self._horizon
        times = list(islice(recurrence.between(since, horizon_end), self._batch))
        if len(times) == self._batch:
            return times, times[-1]
        if recurrence.next_after(horizon_end, 1):
            return times, horizon_end
        return times, EXHAUSTED

    async def store(self, rule: RuleRecord, times: list[datetime], now: datetime) -> None:
        await self._store.insert_tasks([new_task_record(rule, t, now) for t in times])

    def announce(self, rule: RuleRecord, times: list[datetime], now: datetime) -> None:
        """Publish what was stored; call once the transaction has committed."""
        if times:
            data = {"count": len(times), "first": times[0], "last": times[-1]}
            self._events.publish(
                Event(
                    type=EventType.task_materialized, at=now, rule_id=rule.id, channel=rule.channel, data=data
                )
            )

    async def expand(
        self, rule: RuleRecord, now: datetime, recurrence: Recurrence | None = None
    ) -> list[datetime]:
        """Store the rule's next occurrences up to the horizon (one batch); return them."""
        times, until = self.plan(recurrence or recurrence_of(rule), rule.expanded_until or now, now)
        await self.store(rule, times, now)
        await self._store.set_expanded_until(rule.id, until)
        rule.expanded_until = until
        return times

    async def run_pass(self) -> int:
        """Top up every rule whose stored occurrences end within half the horizon."""
        now = self._clock.now()
        low_water = now + self._horizon / 2
        stored = 0
        after_id = 0
        while True:
            rules = await self._store.rules_to_expand(low_water, after_id, _RULES_PER_QUERY)
            if not rules:
                return stored
            for rule in rules:
                after_id = rule.id
                stored += await self._top_up(rule, now)

    async def _top_up(self, rule: RuleRecord, now: datetime) -> int:
        """One batch, or as many as it takes to reach now after downtime, so that current
        occurrences are stored (and dispatched) at once rather than passes later."""
        stored = 0
        seen = rule.expanded_until
        while True:
            async with self._store.transaction():
                fresh = await self._store.get_rule(rule.id, for_update=True)
                if fresh is None or not fresh.enabled or fresh.expanded_until != seen:
                    return stored  # changed meanwhile (edited, disabled, another replica)
                times = await self.expand(fresh, now)
            self.announce(fresh, times, now)
            stored += len(times)
            seen = fresh.expanded_until
            if not times or seen is None or seen >= now:
                return stored

    async def run(self) -> None:
        """Expand forever, a pass every ``poll_s`` seconds (rule changes expand inline)."""

        async def one_pass() -> None:
            stored = await self.run_pass()
            if stored:
                logger.debug("expander stored %d occurrences", stored)

        await every(self._poll_s, one_pass, "expansion")
