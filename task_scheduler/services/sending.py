"""What becomes of one claimed task: sent at its time, or not, and its outcome recorded.

A task claimed ahead of its time waits for it here; a change heard of meanwhile has its
rule read again, which may stop it (disabled, paused or deleted).

A target found unreachable is probed by one attempt at a time while the others are held
back unsent (``domain.outages``); when it answers again, its waiting tasks go at once.

A task whose earlier attempt may have reached the fleet (an ambiguous answer, or a replica
that died after sending) is looked up at the fleet by its label before anything is sent
again. What to do with late tasks and failed attempts is decided by the pure rules in
``domain.policy``.

Each outcome goes to the ``settler`` (recorded in groups), and its events are published
once it is recorded. The claim loop (``dispatcher``) hands tasks here and learns when one
is done with its target.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
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
from task_scheduler.kinds.base import Occurrence, TaskKind
from task_scheduler.kinds.registry import Registry
from task_scheduler.metrics import Metrics
from task_scheduler.services.carriers import Carrier, Carriers
from task_scheduler.services.occurrences import task_document
from task_scheduler.services.settler import Settler, run_row, settlement
from task_scheduler.storage.claimed import ClaimedTask, DispatchRule
from task_scheduler.storage.store import Settled, Settlement, Store
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome, Transport

logger = logging.getLogger(__name__)


def target_of(task: ClaimedTask, rule: DispatchRule | None) -> str:
    """The target a task goes to: its own (copied from its rule when it was stored), else its rule's."""
    return task.target or (rule.target if rule else None) or "default"


def _kind_of(task: ClaimedTask, rule: DispatchRule | None) -> str:
    return rule.task_kind if rule else task.kind


def _found_at_fleet(fleet_task_id: str, label: str) -> Delivery:
    """An earlier or unclear attempt the fleet turns out to have: a success, not resent."""
    return Delivery(Outcome.SUCCEEDED, fleet_task_id=fleet_task_id, response={"found_by_label": label})


class Sender:
    """Takes each claimed task from its time to its recorded outcome; one per dispatcher."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry,
        carriers: Carriers,
        publish: Callable[[Event], None],
        metrics: Metrics,
        *,
        replica_id: str,
        requester: str,
        rng: Random,
        let_go: Callable[[str], None],
        made_due: Callable[[], None],
    ) -> None:
        """``let_go`` is told a task's id once it is done with its target; ``made_due``,
        that tasks were made due again: a retry or a held task recorded, or a target's
        waiting tasks made due now, as it answers again."""
        self._store = store
        self._clock = clock
        self._registry = registry
        self._carriers = carriers
        self._publish_event = publish
        self._metrics = metrics
        self._replica_id = replica_id
        self._requester = requester
        self._rng = rng
        self._let_go = let_go
        self._made_due = made_due
        self._settler = Settler(store, replica_id)
        self._outages = Outages()
        self._probes: dict[str, int] = {}
        """Task id -> the number of the probe it is (see domain.outages), while in flight."""
        self._waiting: set[str] = set()
        """Tasks claimed ahead of their time and not yet due: nothing of them has been sent."""
        self._changes = 0
        """Counts the changes to rules and tasks heard of, so a claim waiting for its time
        knows whether to look at its rule again."""
        self.started_at = clock.now()

    @property
    def changes(self) -> int:
        """Changes heard of so far: a claim remembers it, to know later whether any came since."""
        return self._changes

    def heard_change(self) -> None:
        """A rule or task changed: a claim waiting for its time reads its rule again."""
        self._changes += 1

    async def stop(self, grace_s: float) -> None:
        """Once nothing is in flight: wait up to ``grace_s`` for outcomes to be recorded, and
        give back the claims still waiting for their time, never sent: as they were, due when
        they were."""
        await self._settler.drain(grace_s)
        await self._store.unclaim(self._waiting, self._replica_id)
        self._waiting.clear()

    async def handle(self, task: ClaimedTask, rule: DispatchRule | None, changes_seen: int) -> None:
        """See a claimed task through; ``changes_seen``: ``changes`` when it was claimed."""
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
        target_name = target_of(task, rule)
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
                self._made_due()

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
            requester=self._requester,
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

    async def _record(self, task: ClaimedTask, outcome: Settlement) -> Settled | None:
        """Record an outcome with the others finishing now, once the task is done with its target."""
        self._let_go(task.id)
        settled = await self._settler.settle(outcome)
        if outcome.status == TaskStatus.scheduled.value:
            self._made_due()
        return settled

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
        run = run_row(task, delivery, started, finished, self._replica_id)
        settled = await self._record(task, replace(outcome, run=run, pause_after=policy.max_attempts))
        if settled is None:
            logger.warning("task %s: lease lost before its outcome was recorded; its run is kept", task.id)
            return
        lateness = (
            (finished - task.scheduled_at).total_seconds() if delivery.outcome is Outcome.SUCCEEDED else None
        )
        self._metrics.observe_run(delivery.outcome.value, lateness, target_of(task, rule))
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
