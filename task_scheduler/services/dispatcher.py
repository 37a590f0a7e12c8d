"""The dispatcher hands every due task to its target once, and records each attempt as a Run.

It sleeps until the next task is due (or until woken by a change), claims due tasks with a
lease in one statement, and dispatches them concurrently up to a bound. Tasks are claimed
up to ``claim_ahead_s`` before their time and sent at it, so that the claim's round trips,
which wait their turn behind API requests, are no part of a task's lateness.

Per target it holds at most ``HELD_PER_SLOT`` tasks for each request the target sends at
once; once it holds more than one lot, claims pass over that target's tasks until it is
down to one lot, so a slow fleet does not hold up rules sent elsewhere.

A target found unreachable is probed by one attempt at a time while the others are held
back unsent (``domain.outages``); when it answers again, its waiting tasks go at once.

A task whose earlier attempt may have reached the fleet (an ambiguous answer, or a replica
that died after sending) is looked up at the fleet by its label before anything is sent
again.  What to do with late tasks and failed attempts
is decided by the pure rules in ``domain.policy``.

Beside it: ``carriers`` (each target's transport), ``settler`` (what an answer makes of a
task, recorded in groups) and ``dispatch_thread`` (the loop and thread it runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from random import Random
from typing import Any

from task_scheduler.clock import Clock
from task_scheduler.domain.messages import task_label
from task_scheduler.domain.outages import NOT_A_PROBE, Outages
from task_scheduler.domain.policy import (
    LAST_CALL,
    Verdict,
    deadline,
    misfire_decision,
)
from task_scheduler.domain.rules import Policy
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.events import Event, EventType
from task_scheduler.kinds.base import Occurrence, TaskKind, TransportContext
from task_scheduler.kinds.registry import Registry
from task_scheduler.metrics import Metrics
from task_scheduler.services.carriers import Carrier, Carriers
from task_scheduler.services.occurrences import task_document
from task_scheduler.services.settler import Settler, run_row, settlement
from task_scheduler.services.targets import TargetService
from task_scheduler.services.wakeup import Wakeup, being_cancelled
from task_scheduler.storage.claimed import ClaimedTask, DispatchRule
from task_scheduler.storage.priority import serve_first
from task_scheduler.storage.store import Settled, Settlement, Store
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome, Transport

logger = logging.getLogger(__name__)


HELD_PER_SLOT = 4
"""Tasks a replica holds per request a target sends at once (its capacity): enough for one
claim to bring a good lot (claims cost a round trip each), few enough that a slow target
leaves most dispatch slots to the others."""


def _target_of(task: ClaimedTask, rule: DispatchRule | None) -> str:
    """The target a task goes to: its own (copied from its rule when it was stored), else its rule's."""
    return task.target or (rule.target if rule else None) or "default"


def _kind_of(task: ClaimedTask, rule: DispatchRule | None) -> str:
    return rule.task_kind if rule else task.kind


def _found_at_fleet(fleet_task_id: str, label: str) -> Delivery:
    """An earlier or unclear attempt the fleet turns out to have: a success, not resent."""
    return Delivery(Outcome.SUCCEEDED, fleet_task_id=fleet_task_id, response={"found_by_label": label})


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
        self._registry = registry
        self._carriers = Carriers(targets, registry, transport_context)
        self._publish_event = publish
        self._settler = Settler(store, settings.replica_id)
        self._metrics = metrics
        self._settings = settings
        self._ahead = timedelta(seconds=settings.claim_ahead_s)
        self._rng = rng or Random()
        self._wakeup = Wakeup()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_target: Counter[str] = Counter()
        """Tasks held per target: claimed, not yet done with it."""
        self._holding: dict[str, str] = {}
        """Task id -> the target it counts against in ``_per_target``."""
        self._outages = Outages()
        self._probes: dict[str, int] = {}
        """Task id -> the number of the probe it is (see domain.outages), while in flight."""
        self._waiting: set[str] = set()
        """Tasks claimed ahead of their time and not yet due: nothing of them has been sent."""
        self._changes = 0
        """Counts the changes to rules and tasks heard of, so a claim waiting for its time
        knows whether to look at its rule again."""
        self.started_at = clock.now()
        self._renewed_at = self.started_at
        # When the sleeping loop will look again by itself; None while it is awake.
        self._wake_at: datetime | None = None
        # The loop and thread it runs on, once running: wake() from elsewhere goes through them.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()

    @property
    def replica_id(self) -> str:
        return self._settings.replica_id

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
        if due_at is None:
            self._changes += 1
            self._wakeup.poke()
        elif self._wake_at is None or due_at - self._ahead < self._wake_at:  # claimable that early
            self._wakeup.poke()

    # -- the loop ------------------------------------------------------------------------

    async def run_pass(self, *, ahead: bool = False) -> int:
        """Claim what is due now (with ``ahead``, also what falls due within ``claim_ahead_s``,
        as the loop does) and dispatch all of it; return how many tasks were claimed."""
        seen = self._changes
        claimed = await self._claim(self._settings.batch, ahead=ahead)
        await asyncio.gather(*(self._handle(task, rule, seen) for task, rule in claimed))
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
                seen = self._changes  # before the rules are read with the claim
                claimed = await self._claim(wanted, ahead=True) if wanted > 0 else []
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
        next_due = await self._store.next_due_at(saturated=self._saturated(), claim_ahead=self._ahead)
        if next_due is None:
            return longest
        return min(longest, max(0.0, (next_due - self._clock.now()).total_seconds()))

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
        job = asyncio.create_task(self._handle(task, rule, changes_seen), name=f"dispatch {task.id}")
        self._inflight[task.id] = job
        target = _target_of(task, rule)
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
        # Look again only when this opens room that was closed: a target down to one lot.
        # Else the loop's own sleep is right.
        if cached is None or held == cached.transport.capacity:
            self._wakeup.poke()

    async def _record(self, task: ClaimedTask, outcome: Settlement) -> Settled | None:
        """Record an outcome with the others finishing now, once the task is done with its target."""
        self._let_go(task.id)
        return await self._settler.settle(outcome)

    async def stop(self, grace_s: float) -> None:
        """Let in-flight dispatches finish for up to ``grace_s``, then hand back every claim."""
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight.values()), timeout=grace_s)
            for job in pending:
                job.cancel()
            for job in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
        await self._settler.drain(grace_s)
        # Claims still waiting for their time were never sent: back as they were, due when they were.
        await self._store.unclaim(self._waiting, self.replica_id)
        self._waiting.clear()
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
                name = _target_of(task, rule)
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
        """Targets this replica holds more than one lot for: it claims for them again once
        they are down to one lot, a whole lot at a time, rather than a task per reply."""
        return [
            name
            for name, held in self._per_target.items()
            if (cached := self._carriers.known.get(name)) is not None and held > cached.transport.capacity
        ]

    # -- one task ------------------------------------------------------------------------

    async def _handle(self, task: ClaimedTask, rule: DispatchRule | None, changes_seen: int) -> None:
        try:
            if task.due_at > self._clock.now():
                rule = await self._when_due(task, rule, changes_seen)
            await self._dispatch(task, rule)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and another pass retries; nothing is lost.
            logger.exception("dispatching task %s failed unexpectedly", task.id)

    async def _when_due(
        self, task: ClaimedTask, rule: DispatchRule | None, changes_seen: int
    ) -> DispatchRule | None:
        """Wait for the time of a task claimed ahead of it. It then goes as it was claimed,
        unless a change was heard of meanwhile: then its rule as it is now decides (disabled,
        paused or deleted stops it), read again in the only round trip at that point."""
        self._waiting.add(task.id)
        await self._clock.sleep_until(task.due_at)  # if cancelled, stop() gives the claim back
        self._waiting.discard(task.id)
        if self._changes == changes_seen or task.rule_id is None:
            return rule
        return (await self._store.dispatch_rules([task.rule_id])).get(task.rule_id)

    async def _dispatch(self, task: ClaimedTask, rule: DispatchRule | None) -> None:
        policy = Policy.model_validate(rule.policy) if rule else Policy()
        target_name = _target_of(task, rule)
        carrier = await self._carriers.get(target_name)
        kind = self._registry.task_kinds.get(_kind_of(task, rule))
        document = task_document(task, rule)
        started = self._clock.now()
        # URLs given without a target share one transport but not their hosts: no breaker.
        breaker = carrier is not None and target_name not in self._carriers.direct
        last_call = started >= deadline(policy, task.scheduled_at) - LAST_CALL
        probe = self._outages.admit(target_name, started, last_call=last_call) if breaker else NOT_A_PROBE
        if probe is None:
            await self._hold(task, rule, policy, target_name, started)
            return
        if probe != NOT_A_PROBE:
            self._probes[task.id] = probe
        try:
            await self._attempt(task, rule, policy, target_name, carrier, kind, document, started)
        finally:
            if probe != NOT_A_PROBE:
                del self._probes[task.id]
                self._outages.abandoned(target_name, probe)  # one that never reached it lets another go

    async def _attempt(
        self,
        task: ClaimedTask,
        rule: DispatchRule | None,
        policy: Policy,
        target_name: str,
        carrier: Carrier | None,
        kind: TaskKind | None,
        document: dict[str, Any],
        started: datetime,
    ) -> None:
        transport = carrier.transport if carrier else None
        if transport is not None and task.attempts > 1:
            # An earlier claim may have reached the fleet before its replica died or its
            # answer was lost: settle that first, whatever the task's lateness now.
            prior = await self._earlier_attempt(task, target_name, transport, kind, document)
            if prior is not None:
                await self._settle_run(task, rule, policy, transport, prior, started, self._clock.now())
                return
        reason = await self._reason_not_to_run(task, rule, policy, started)
        if reason is not None:
            await self._settle_unrun(task, rule, *reason)
            return
        if kind is None:
            delivery = Delivery(Outcome.REJECTED, error=f"no task kind {_kind_of(task, rule)!r} is installed")
        elif carrier is None:
            delivery = Delivery(Outcome.FAILED, error=f"target {target_name!r} does not exist")
        elif carrier.kind not in kind.target_kinds:
            delivery = Delivery(
                Outcome.REJECTED, error=f"{kind.name} tasks cannot go through a {carrier.kind} target"
            )
        else:
            delivery = await self._deliver(task, target_name, transport, kind, document, policy, started)
        await self._settle_run(
            task, rule, policy, transport, delivery, started, self._clock.now(), kind, document
        )

    async def _hold(
        self, task: ClaimedTask, rule: DispatchRule | None, policy: Policy, target_name: str, now: datetime
    ) -> None:
        """Give a task for a target that is down back unsent, due at the next probe; once
        that would be past its deadline, it is missed."""
        outage = self._outages.get(target_name)
        assert outage is not None
        down = f"target {target_name!r} has been unreachable since {outage.since:%H:%M:%S} UTC"
        last = deadline(policy, task.scheduled_at) - LAST_CALL
        if now >= last:
            reason = f"the fleet stayed unreachable past the misfire grace ({down})"
            await self._settle_unrun(task, rule, TaskStatus.missed, reason)
            return
        await self._record(
            task,
            Settlement(
                task.id,
                task.rule_id,
                TaskStatus.scheduled.value,
                f"waiting: {down}"[:255],
                now,
                due_at=min(self._outages.look_again_at(target_name, now), last),
                unsent=True,
            ),
        )

    async def _reached(self, task: ClaimedTask, target_name: str, reached: bool) -> None:
        """Note whether an attempt got through to the target; when it is back from an
        outage, the tasks waiting to retry go now."""
        if target_name in self._carriers.direct:
            return
        now = self._clock.now()
        if not reached:
            self._outages.unreachable(target_name, now, self._probes.get(task.id, NOT_A_PROBE))
        elif self._outages.reached(target_name):
            logger.info("target %s is reachable again", target_name)
            if await self._store.retry_now(target_name, now):
                self._wakeup.poke()

    async def _earlier_attempt(
        self,
        task: ClaimedTask,
        target_name: str,
        transport: Transport,
        kind: TaskKind | None,
        document: dict[str, Any],
    ) -> Delivery | None:
        """What became of the previous attempt, when the fleet may have it; None to send again."""
        if kind is not None and kind.resend_safe(document):
            return None  # sending it again does no harm
        label = task_label(task.id)
        if transport.supports_lookup:
            try:
                found = await transport.find(label)
            except LookupFailed as exc:
                await self._reached(task, target_name, exc.reached)
                return Delivery(
                    Outcome.UNKNOWN,
                    error=f"could not ask the fleet before resending: {exc}",
                    ambiguous=True,
                    reached=exc.reached,
                )
            await self._reached(task, target_name, True)
            return None if found is None else _found_at_fleet(found, label)
        last = await self._store.last_run_of(task.id)
        if last is not None and last.attempt == task.attempts - 1:
            return None  # the previous attempt ended with a clear answer and was recorded
        return Delivery(
            Outcome.UNKNOWN,
            error="an earlier attempt may have reached the target, which cannot be asked; not resent",
            ambiguous=True,
        )

    async def _reason_not_to_run(
        self, task: ClaimedTask, rule: DispatchRule | None, policy: Policy, now: datetime
    ) -> tuple[TaskStatus, str] | None:
        if task.rule_id is not None and rule is None:
            return TaskStatus.cancelled, "the rule was deleted"
        if not task.enabled:
            return TaskStatus.skipped, "task disabled"
        if rule is not None and not rule.enabled:
            return TaskStatus.skipped, "rule disabled"
        if rule is not None and rule.paused_reason:
            return TaskStatus.skipped, f"rule paused: {rule.paused_reason}"
        newer = False
        if rule is not None and policy.catch_up == "latest" and task.scheduled_at < self.started_at:
            newer = await self._store.newer_overdue_exists(task, self.started_at)
        decision = misfire_decision(
            policy,
            scheduled_at=task.scheduled_at,
            now=now,
            dispatcher_started_at=self.started_at,
            newer_overdue_exists=newer,
        )
        if decision.verdict is Verdict.missed:
            return TaskStatus.missed, decision.reason or "missed"
        if decision.verdict is Verdict.skipped:
            return TaskStatus.skipped, decision.reason or "skipped"
        if policy.overlap == "skip" and rule is not None and await self._store.other_dispatching(task, now):
            return TaskStatus.skipped, "the previous occurrence is still being dispatched (overlap=skip)"
        return None

    async def _deliver(
        self,
        task: ClaimedTask,
        target_name: str,
        transport: Transport,
        kind: TaskKind,
        document: dict[str, Any],
        policy: Policy,
        now: datetime,
    ) -> Delivery:
        label = task_label(task.id)
        occurrence = Occurrence(
            task_id=task.id,
            rule_id=task.rule_id,
            scheduled_at=task.scheduled_at,
            now=now,
            requester=self._settings.requester,
        )
        try:
            message = kind.build(document, occurrence)
        except Exception as exc:  # a kind's fault: recorded as the run's, not left dispatching
            logger.exception("task %s: the %s kind could not build its message", task.id, kind.name)
            return Delivery(
                Outcome.FAILED, error=f"the {kind.name} kind failed to build the message: {exc!r}"
            )
        limit = policy.max_execution_time_s
        try:
            delivery = await asyncio.wait_for(transport.submit(message), limit)
        except asyncio.TimeoutError:
            delivery = Delivery(
                Outcome.TIMEOUT, error=f"gave up after max_execution_time_s ({limit:g} s)", ambiguous=True
            )
        except Exception as exc:  # it may have left: unclear, asked at the fleet before any resend
            logger.exception("task %s: the %s transport failed unexpectedly", task.id, kind.name)
            delivery = Delivery(Outcome.FAILED, error=f"the transport failed: {exc!r}", ambiguous=True)
        await self._reached(task, target_name, delivery.reached)
        if delivery.ambiguous and transport.supports_lookup:
            try:
                found = await transport.find(label)
            except LookupFailed:
                return delivery
            if found is not None:
                return _found_at_fleet(found, label)
        return delivery

    # -- recording -----------------------------------------------------------------------

    async def _settle_unrun(
        self, task: ClaimedTask, rule: DispatchRule | None, status: TaskStatus, reason: str
    ) -> None:
        outcome = Settlement(task.id, task.rule_id, status.value, reason[:255], self._clock.now())
        if await self._record(task, outcome):
            kind = EventType.task_missed if status is TaskStatus.missed else EventType.task_skipped
            self._publish(kind, task, rule, {"status": status.value, "reason": reason})

    async def _settle_run(
        self,
        task: ClaimedTask,
        rule: DispatchRule | None,
        policy: Policy,
        transport: Transport | None,
        delivery: Delivery,
        started: datetime,
        finished: datetime,
        kind: TaskKind | None = None,
        document: dict[str, Any] | None = None,
    ) -> None:
        resend_safe = kind is not None and document is not None and kind.resend_safe(document)
        outcome = settlement(
            task,
            rule,
            policy,
            delivery,
            finished,
            resendable=transport is None or transport.supports_lookup or resend_safe,
            rng=self._rng,
        )
        run = run_row(task, delivery, started, finished, self.replica_id)
        settled = await self._record(task, replace(outcome, run=run, pause_after=policy.max_attempts))
        if settled is None:
            logger.warning("task %s: lease lost before its outcome was recorded; its run is kept", task.id)
            return
        lateness = (
            (finished - task.scheduled_at).total_seconds() if delivery.outcome is Outcome.SUCCEEDED else None
        )
        self._metrics.observe_run(delivery.outcome.value, lateness, _target_of(task, rule))
        summary = {
            key: run[key]
            for key in ("attempt", "outcome", "fleet_task_id", "error", "duration_ms", "response")
        }
        self._publish(EventType.run_finished, task, rule, summary)
        if delivery.outcome is Outcome.SUCCEEDED:
            self._publish(EventType.task_dispatched, task, rule, {"fleet_task_id": delivery.fleet_task_id})
        elif outcome.rule_failed:
            self._publish(EventType.task_failed, task, rule, {"reason": outcome.reason})
        elif outcome.status == TaskStatus.missed.value:
            self._publish(EventType.task_missed, task, rule, {"reason": outcome.reason})
        if settled.paused_reason:
            self._changes += 1  # its next occurrence may be waiting for its time already
            self._publish(EventType.rule_paused, task, rule, {"reason": settled.paused_reason})

    def _publish(
        self, kind: EventType, task: ClaimedTask, rule: DispatchRule | None, data: dict[str, Any]
    ) -> None:
        self._publish_event(
            Event(
                type=kind,
                at=self._clock.now(),
                rule_id=task.rule_id,
                task_id=task.id,
                channel=rule.channel if rule else None,
                data=data,
            )
        )
