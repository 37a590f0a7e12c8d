"""The dispatcher claims every due task once, and hands it to its sender (``sending``).

It sleeps until the next task is due (or until woken by a change), claims due tasks with a
lease in one statement, and hands them on concurrently up to a bound. Tasks are claimed
up to ``claim_ahead_s`` before their time and sent at it, so that the claim's round trips,
which wait their turn behind API requests, are no part of a task's lateness.

Per target it holds at most ``HELD_PER_SLOT`` tasks for each request the target sends at
once; once it holds more than ``REFILL_LOTS`` lots, claims pass over that target's tasks
until it is down to that, so a slow fleet does not hold up rules sent elsewhere.

Beside it: ``sending`` (what becomes of one claimed task: sent or not, its outcome
recorded), ``carriers`` (each target's transport), ``settler`` (what an answer makes of a
task, recorded in groups) and ``dispatch_thread`` (the loop and thread it runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any

from task_scheduler.clock import Clock
from task_scheduler.events import Event
from task_scheduler.kinds.base import TransportContext
from task_scheduler.kinds.registry import Registry
from task_scheduler.metrics import Metrics
from task_scheduler.services.carriers import Carriers
from task_scheduler.services.sending import Sender, target_of
from task_scheduler.services.targets import TargetService
from task_scheduler.services.wakeup import Wakeup, being_cancelled
from task_scheduler.storage.claimed import ClaimedTask, DispatchRule
from task_scheduler.storage.priority import serve_first
from task_scheduler.storage.store import Store
from task_scheduler.transports.base import Transport

logger = logging.getLogger(__name__)


LOOK_PAST_S = 1.0
"""How long a look past the saturated targets that found nothing else claimable is trusted
without news. Else each lot a saturated target finishes would read every task due for
it, to find none for the others; a task stored elsewhere, unannounced, may wait this long
more than it did."""

HELD_PER_SLOT = 6
"""Tasks a replica holds per request a target sends at once (its capacity): enough for one
claim to bring a good lot (claims cost a round trip each), few enough that a slow target
leaves half the default dispatch slots to the others."""

REFILL_LOTS = 3
"""A target is claimed for again once a replica holds this many lots of its tasks or fewer
(a lot: what it sends at once): one lot in flight and two waiting their turn, which keeps
its connections busy through the claim's round trip. That trip waits behind the answers
the loop is handling: with one lot left, over a quarter of the answers found no task
waiting for the connection they freed (10,000 tasks due at once)."""


@dataclass(frozen=True)
class _LookedPast:
    """What the last look past saturated targets found: the next time another target's task
    is claimable (``next_due``, None for none); trusted until ``trusted_until`` while no
    news came (``news``) and those targets, or more, stay saturated."""

    saturated: frozenset[str]
    next_due: datetime | None
    trusted_until: datetime
    news: int


@dataclass(frozen=True)
class DispatchSettings:
    replica_id: str
    requester: str
    lease_s: float
    batch: int
    concurrency: int
    poll_s: float
    claim_ahead_s: float


class Dispatcher:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        targets: TargetService,
        registry: Registry,
        transport_context: TransportContext,
        publish: Callable[[Event], None],
        metrics: Metrics,
        settings: DispatchSettings,
        rng: Random | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._carriers = Carriers(targets, registry, transport_context)
        self._metrics = metrics
        self._settings = settings
        self._ahead = timedelta(seconds=settings.claim_ahead_s)
        self._wakeup = Wakeup()
        self._sending = Sender(
            store,
            clock,
            registry,
            self._carriers,
            publish,
            metrics,
            replica_id=settings.replica_id,
            requester=settings.requester,
            rng=rng or Random(),
            let_go=self._let_go,
            made_due=self._made_due,
        )
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_target: Counter[str] = Counter()
        """Tasks held per target: claimed, not yet done with it."""
        self._holding: dict[str, str] = {}
        """Task id -> the target it counts against in ``_per_target``."""
        self._renewed_at = self.started_at
        self._news = 0
        """Counts what may have made tasks claimable (a wake-up, a retry recorded, a claim
        given back): a look past saturated targets holds only while it stays the same."""
        self._looked_past: _LookedPast | None = None
        # When the sleeping loop will look again by itself; None while it is awake.
        self._wake_at: datetime | None = None
        # The loop and thread it runs on, once running: wake() from elsewhere goes through them.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()

    @property
    def replica_id(self) -> str:
        return self._settings.replica_id

    @property
    def started_at(self) -> datetime:
        """When this dispatcher started: tasks due before then catch up as their policy says."""
        return self._sending.started_at

    @started_at.setter
    def started_at(self, at: datetime) -> None:
        self._sending.started_at = at

    def use_http(self, http: Any) -> None:
        """Send through this HTTP session (one of the loop the dispatcher runs on); before
        the first dispatch."""
        self._carriers.use_http(http)

    def wake(self, due_at: datetime | None = None) -> None:
        """Something changed: look again now, unless it is only a task due after the loop's
        own next look (``due_at``), which then needs no extra round trip to the database.
        Safe to call from any thread."""
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._wake, due_at)
        else:
            self._wake(due_at)

    def _wake(self, due_at: datetime | None) -> None:
        self._news += 1
        if due_at is None:
            self._sending.heard_change()
            self._wakeup.poke()
        elif self._wake_at is None or due_at - self._ahead < self._wake_at:  # claimable that early
            self._wakeup.poke()

    # -- the loop ------------------------------------------------------------------------

    async def run_pass(self, *, ahead: bool = False) -> int:
        """Claim what is due now (with ``ahead``, also what falls due within ``claim_ahead_s``,
        as the loop does) and dispatch all of it; return how many tasks were claimed."""
        seen = self._sending.changes
        claimed = await self._claim(self._settings.batch, ahead=ahead)
        await asyncio.gather(*(self._sending.handle(task, rule, seen) for task, rule in claimed))
        return len(claimed)

    async def run(self) -> None:
        """Dispatch forever: claim while slots are free, else sleep until the next due time."""
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        serve_first()  # its statements, and its dispatches', go before the API's on SQLite
        failing = False  # the traceback is logged once per outage, then one line a second
        while True:
            try:
                await self._renew_leases()
                free = self._settings.concurrency - len(self._inflight)
                wanted = min(free, self._settings.batch, self._widest_room())
                seen = self._sending.changes  # before the rules are read with the claim
                nothing_past = self._trusted_look() is not None
                claimed = await self._claim(wanted, ahead=True) if wanted > 0 and not nothing_past else []
                for task, rule in claimed:
                    self._start(task, rule, seen)
                if wanted > 0 and len(claimed) == wanted:
                    continue  # more may be due right now
                sleep_s = await self._sleep_for(free > len(claimed))
                self._wake_at = self._clock.now() + timedelta(seconds=sleep_s)
                await self._wakeup.wait(sleep_s)
                self._wake_at = None
                if failing:
                    logger.info("dispatch loop recovered")
                    failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if being_cancelled():
                    raise asyncio.CancelledError from exc
                if failing:
                    logger.warning("dispatch loop still failing (%s); retrying in a second", exc)
                else:
                    logger.exception("dispatch loop failed; retrying in a second")
                failing = True
                await self._wakeup.wait(1.0)

    async def _sleep_for(self, slots_free: bool) -> float:
        # With dispatches in flight, wake in time to renew their leases.
        longest = (
            self._settings.poll_s
            if not self._inflight
            else min(self._settings.poll_s, self._settings.lease_s / 3)
        )
        if not slots_free:
            return longest  # a finishing dispatch wakes the loop
        looked = self._trusted_look()
        if looked is not None:
            next_due = looked.next_due
        else:
            saturated, news = self._saturated(), self._news
            next_due = await self._store.next_due_at(saturated=saturated, claim_ahead=self._ahead)
            if saturated and news == self._news:
                trusted_until = self._clock.now() + timedelta(seconds=LOOK_PAST_S)
                self._looked_past = _LookedPast(frozenset(saturated), next_due, trusted_until, news)
        if next_due is None:
            return longest
        return min(longest, max(0.0, (next_due - self._clock.now()).total_seconds()))

    def _trusted_look(self) -> _LookedPast | None:
        """The last look past saturated targets, while it still says nothing else is claimable
        now: no news since, before its time, and at least those targets still saturated."""
        looked, now = self._looked_past, self._clock.now()
        if (
            looked is not None
            and looked.news == self._news
            and now < looked.trusted_until
            and (looked.next_due is None or now < looked.next_due)
            and looked.saturated <= set(self._saturated())
        ):
            return looked
        return None

    def _made_due(self) -> None:
        """Tasks were made due by a dispatch (a retry or a held task recorded, a target back
        from an outage): look again."""
        self._news += 1
        self._wakeup.poke()

    async def _renew_leases(self) -> None:
        """Keep the leases of slow dispatches alive, so no other claim takes them over.

        Every third of a lease is often enough: a claim made since then has a fresh one.
        """
        now = self._clock.now()
        if self._inflight and now >= self._renewed_at + timedelta(seconds=self._settings.lease_s / 3):
            await self._store.renew_leases(
                list(self._inflight), self.replica_id, now + timedelta(seconds=self._settings.lease_s)
            )
            self._renewed_at = now

    def _start(self, task: ClaimedTask, rule: DispatchRule | None, changes_seen: int) -> None:
        job = asyncio.create_task(self._sending.handle(task, rule, changes_seen), name=f"dispatch {task.id}")
        self._inflight[task.id] = job
        target = target_of(task, rule)
        self._holding[task.id] = target
        self._per_target[target] += 1

        def done(_: asyncio.Task[None]) -> None:
            was_full = len(self._inflight) >= self._settings.concurrency
            self._inflight.pop(task.id, None)
            self._let_go(task.id)
            if was_full:  # a free slot after all were taken: look again
                self._wakeup.poke()

        job.add_done_callback(done)

    def _let_go(self, task_id: str) -> None:
        """A task is done with its target (answered, held back, or not sent): its room there
        opens, while its outcome may still be on its way to the database."""
        target = self._holding.pop(task_id, None)
        if target is None:
            return
        self._per_target[target] -= 1
        held = self._per_target[target]
        if not held:
            del self._per_target[target]
        cached = self._carriers.known.get(target)
        # Look again only when this opens room that was closed: a target down to its refill
        # level. Else the loop's own sleep is right.
        if cached is None or held == _refill_level(cached.transport):
            self._wakeup.poke()

    async def stop(self, grace_s: float) -> None:
        """Let in-flight dispatches finish for up to ``grace_s``, then hand back every claim."""
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight.values()), timeout=grace_s)
            for job in pending:
                job.cancel()
            for job in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
        await self._sending.stop(grace_s)
        released = await self._store.release_claims(self.replica_id, self._clock.now())
        if released:
            logger.info("released %d claimed task(s) on shutdown", released)
        await self._carriers.aclose()

    async def _claim(self, limit: int, *, ahead: bool) -> list[tuple[ClaimedTask, DispatchRule | None]]:
        """Claim due tasks and load their rules in one query per batch.

        A claim may take more of one target's tasks than it has room for (it becomes
        saturated within the batch): those are given back at once, untouched.
        """
        now = self._clock.now()
        tasks = await self._store.claim_due(
            now,
            self.replica_id,
            now + timedelta(seconds=self._settings.lease_s),
            limit,
            busy=self._inflight,
            saturated=self._saturated(),
            due_by=now + self._ahead if ahead else now,
        )
        try:
            rules = await self._store.dispatch_rules(t.rule_id for t in tasks if t.rule_id is not None)
            room: dict[str, int] = {}
            kept, extra = [], []
            for task in tasks:
                rule = rules.get(task.rule_id) if task.rule_id is not None else None
                name = target_of(task, rule)
                if name not in room:
                    carrier = await self._carriers.get(name)
                    room[name] = self._room(name, carrier.transport) if carrier else len(tasks)
                if room[name] > 0:
                    room[name] -= 1
                    kept.append((task, rule))
                else:
                    extra.append(task.id)
        except Exception:
            # Nothing was sent: give the whole claim back as it was, rather than leave it to
            # run out its lease and be taken for an attempt that may have reached the target.
            # (On shutdown, stop() hands back every claim.)
            await self._store.unclaim([task.id for task in tasks], self.replica_id)
            raise
        if extra:
            self._news += 1
        await self._store.unclaim(extra, self.replica_id)
        self._metrics.claims.inc(len(kept))
        return kept

    def _room(self, name: str, transport: Transport) -> int:
        """How many more of a target's tasks this replica takes on: ``HELD_PER_SLOT`` times
        what the target sends at once, less what it holds."""
        return HELD_PER_SLOT * transport.capacity - self._per_target[name]

    def _widest_room(self) -> int:
        """The most tasks one claim should take: the most room any known, unsaturated target
        has (a claim of one target's tasks then needs no give-back); no bound when none has."""
        saturated = self._saturated()
        rooms = [
            self._room(name, c.transport) for name, c in self._carriers.known.items() if name not in saturated
        ]
        return max(rooms) if rooms else self._settings.batch

    def _saturated(self) -> list[str]:
        """Targets this replica holds more than ``REFILL_LOTS`` lots for: it claims for them
        again once they are down to that, several lots at a time, rather than a task per reply."""
        return [
            name
            for name, held in self._per_target.items()
            if (cached := self._carriers.known.get(name)) is not None
            and held > _refill_level(cached.transport)
        ]


def _refill_level(transport: Transport) -> int:
    """How many of a target's tasks a replica holds at most before it claims for it again."""
    return REFILL_LOTS * transport.capacity
