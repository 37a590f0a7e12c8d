"""Task use cases: list occurrences for any window, edit or skip one occurrence.

A listing merges stored tasks with occurrences computed on the fly past each rule's
stored horizon (services.listing).  Editing an occurrence that is only computed stores it, marked edited,
so the expander and series edits leave it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from task_scheduler.clock import Clock
from task_scheduler.domain.errors import Conflict, Invalid, NotFound
from task_scheduler.domain.listing import Position, TaskQuery
from task_scheduler.domain.rules import RmfTask
from task_scheduler.domain.schedule import whole_millis
from task_scheduler.domain.storable import require_storable
from task_scheduler.domain.tasks import TaskPatch, TaskStatus, parse_task_id
from task_scheduler.events import Event, EventBus, EventType
from task_scheduler.kinds.base import TaskKind
from task_scheduler.services.listing import Lister, Page
from task_scheduler.services.occurrences import (
    SMALLEST_STEP,
    TaskView,
    computed_view,
    due_at,
    new_task_record,
    recurrence_of,
    task_view,
)
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from task_scheduler.storage.retry import retrying
from task_scheduler.storage.store import Store, TaskDeletion, TaskMatch

# A bulk delete stores at most this many computed occurrences as skipped, in one transaction.
MAX_BULK_SKIPS = 10_000


class TaskService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        events: EventBus,
        changed: Callable[[], None],
        rmf: TaskKind,
    ) -> None:
        """``rmf``: the rmf task kind, which checks an occurrence's own request."""
        self._store = store
        self._clock = clock
        self._events = events
        self._changed = changed
        self._rmf = rmf
        self._lister = Lister(store)
        events.stream.subscribe(on_next=self._rule_changed)

    def _rule_changed(self, event: Event) -> None:
        if event.rule_id is not None and event.type.value.startswith("rule."):
            self._lister.forget(event.rule_id)

    async def list(self, query: TaskQuery, after: Position | None, *, offset: int, limit: int) -> Page:
        """Occurrences scheduled in the window, stored and computed, by time then id (see Lister)."""
        return await self._lister.page(query, after, offset, limit)

    async def _views(self, records: list[TaskRecord]) -> list[TaskView]:
        rules = await self._store.rules_by_ids(r.rule_id for r in records if r.rule_id is not None)
        return [task_view(record, rules.get(record.rule_id)) for record in records]

    async def get(self, task_id: str) -> TaskView:
        record = await self._store.get_task(task_id)
        if record is not None:
            return (await self._views([record]))[0]
        rule, original_at = await self._computed(task_id)
        return computed_view(rule, original_at)

    async def _computed(self, task_id: str) -> tuple[RuleRecord, datetime]:
        """The rule and time of an occurrence that is not stored, or NotFound."""
        parsed = parse_task_id(task_id)
        if parsed is None:
            raise NotFound("task", task_id)
        rule_id, original_at = parsed
        rule = await self._store.get_rule(rule_id)
        if rule is None or not _computed_occurrence(rule, original_at, self._clock.now()):
            raise NotFound("task", task_id)
        return rule, original_at

    async def _editable(self, task_id: str) -> tuple[TaskRecord | None, RuleRecord | None, datetime | None]:
        record = await self._store.get_task(task_id, for_update=True)
        if record is None:
            rule, original_at = await self._computed(task_id)
            return None, rule, original_at
        if record.status not in (TaskStatus.scheduled.value, TaskStatus.skipped.value):
            raise Conflict(f"task {task_id!r} is {record.status}; only a scheduled task can be changed")
        rule = await self._store.get_rule(record.rule_id) if record.rule_id is not None else None
        return record, rule, None

    @retrying
    async def patch(self, task_id: str, patch: TaskPatch) -> TaskView:
        now = self._clock.now()
        changes: dict[str, Any] = {"edited": True, "updated_at": now}
        async with self._store.transaction():
            record, rule, original_at = await self._editable(task_id)
            if record is not None and record.status == TaskStatus.skipped.value:
                why = "was deleted; it stays skipped" if record.status_reason == "deleted" else "was skipped"
                raise Conflict(f"task {task_id!r} {why}")
            if patch.enabled is not None:
                changes["enabled"] = patch.enabled
            if patch.scheduled_at is not None:
                changes["scheduled_at"] = _as_utc(patch.scheduled_at, rule.timezone if rule else "UTC")
                if changes["scheduled_at"] < now:
                    raise Invalid.at(
                        ("scheduled_at",), "cannot move an occurrence into the past; dispatch it now instead"
                    )
                # A task without a rule (a timer) has no lead time: due when scheduled.
                changes["due_at"] = due_at(rule, changes["scheduled_at"]) if rule else changes["scheduled_at"]
            if "request" in patch.model_fields_set:
                kind = record.kind if record else rule.task_kind  # a computed one always has a rule
                if kind != "rmf":
                    raise Invalid.at(
                        ("request",), f"only rmf tasks take their own request; this one is {kind}"
                    )
                changes.update(self._request_columns(patch, rule))
            if record is None:
                record = new_task_record(rule, original_at, now)
                record.update_from_dict(changes)
                await self._store.insert_task(record)
            else:
                await self._store.save_task(record, **changes)
        self._announce(record, rule, "edited", now)
        return task_view(record, rule)

    def _announce(self, record: TaskRecord, rule: RuleRecord | None, action: str, now: datetime) -> None:
        """Wake the dispatcher (the task may be due sooner) and tell subscribers."""
        self._changed()
        channel = rule.channel if rule else None
        event = Event(
            type=EventType.task_updated,
            at=now,
            rule_id=record.rule_id,
            task_id=record.id,
            channel=channel,
            data={"action": action},
        )
        self._events.publish(event)

    def _request_columns(self, patch: TaskPatch, rule: RuleRecord | None) -> dict[str, Any]:
        if patch.request is None:
            return {"request": None, "category": rule.category if rule else None}
        problems = self._rmf.check(RmfTask(request=patch.request))
        if problems:
            raise Invalid(problems)  # each under ("request", ...), as the patch names it
        request = patch.request.model_dump(mode="json", exclude_none=True)
        require_storable(request, ("request",))
        return {"request": request, "category": patch.request.category}

    @retrying
    async def delete(self, task_id: str) -> None:
        """Skip the occurrence for good; the record stays so the series never regenerates it."""
        now = self._clock.now()
        skipped = _deleted(now)
        async with self._store.transaction():
            record, rule, original_at = await self._editable(task_id)
            if record is None:
                record = await self._store.insert_task(new_task_record(rule, original_at, now, **skipped))
            elif record.status != TaskStatus.skipped.value:
                await self._store.save_task(record, **skipped)
            else:
                return
        self._announce(record, rule, "deleted", now)

    @retrying
    async def delete_many(
        self,
        *,
        kind: str | None,
        rule_id: int | None,
        ids: list[str],
        start: datetime | None,
        end: datetime | None,
        status: TaskStatus | None,
    ) -> TaskDeletion:
        """Delete every task the filters match, in one transaction (``Store.delete_tasks``
        says what happens to each row).  Occurrences only computed so far are stored as
        skipped, as ``delete`` does for one, so that the series never brings them back.
        Without any filter nothing is deleted: wiping every task is never what a client meant."""
        match = TaskMatch(
            kind=kind,
            rule_id=rule_id,
            ids=tuple(ids),
            start=start,
            end=end,
            status=status.value if status else None,
        )
        if match == TaskMatch():
            raise Invalid.at(("query",), "name at least one filter: kind, rule_id, id, start, end or status")
        now = self._clock.now()
        skipped = _deleted(now)
        async with self._store.transaction():
            computed = await self._unstored_matches(match, now)
            done = await self._store.delete_tasks(match, now, skipped=skipped)
            await self._store.insert_tasks([new_task_record(rule, t, now, **skipped) for rule, t in computed])
            rule = await self._store.get_rule(match.rule_id) if match.rule_id is not None else None
        done = replace(done, skipped=done.skipped + len(computed))
        if done.deleted or done.skipped:
            self._changed()
            data = {"action": "bulk delete", **asdict(done)}
            channel = rule.channel if rule else None
            event = Event(
                type=EventType.task_updated, at=now, rule_id=match.rule_id, channel=channel, data=data
            )
            self._events.publish(event)
        return done

    async def _unstored_matches(self, match: TaskMatch, now: datetime) -> list[tuple[RuleRecord, datetime]]:
        """The computed occurrences a bulk delete matches, their rules locked until it ends.

        By id: those ``delete`` would store for each.  Otherwise, given an end: those the
        listing computes for the window (a series without an end has no last occurrence).
        """
        if match.status not in (None, TaskStatus.scheduled.value):
            return []
        if match.ids:
            return await self._unstored_by_id(match, now)
        if match.end is None:
            return []
        rules = await self._store.rules_unexpanded_before(
            match.end, rule_id=match.rule_id, kind=match.kind, for_update=True
        )
        if not rules:
            return []
        since = match.start or min(rule.expanded_until for rule in rules)
        taken = await self._store.stored_original_times([r.id for r in rules], since, match.end)
        found = []
        for occurrence in _unstored(rules, match.start, match.end, taken):
            found.append(occurrence)
            if len(found) > MAX_BULK_SKIPS:
                raise Invalid.at(
                    ("query", "end"),
                    f"the period holds more than {MAX_BULK_SKIPS} occurrences not stored yet; narrow it,"
                    " or disable or delete the rule",
                )
        return found

    async def _unstored_by_id(self, match: TaskMatch, now: datetime) -> list[tuple[RuleRecord, datetime]]:
        stored = await self._store.stored_task_ids(match.ids)
        wanted = {parsed for i in set(match.ids) - stored if (parsed := parse_task_id(i)) is not None}
        rules = await self._store.rules_by_ids((rule_id for rule_id, _ in wanted), for_update=True)
        found = []
        for rule_id, t in sorted(wanted):
            rule = rules.get(rule_id)
            if (
                rule is not None
                and match.rule_id in (None, rule_id)
                and match.kind in (None, rule.task_kind)
                and (match.start is None or match.start <= t)
                and (match.end is None or t < match.end)
                and _computed_occurrence(rule, t, now)
            ):
                found.append((rule, t))
        return found

    @retrying
    async def dispatch_now(self, task_id: str) -> TaskView:
        """Send this occurrence now instead of at its time (it counts as moved to now)."""
        now = self._clock.now()
        changes = {"scheduled_at": now, "due_at": now, "enabled": True, "edited": True, "updated_at": now}
        async with self._store.transaction():
            record, rule, original_at = await self._editable(task_id)
            if record is not None and record.status != TaskStatus.scheduled.value:
                raise Conflict(
                    f"task {task_id!r} is {record.status}; only a scheduled task can be dispatched"
                )
            if rule is not None and not rule.enabled:
                raise Conflict(f"rule {rule.id} is disabled; enable it to dispatch its tasks")
            if record is None:
                record = new_task_record(rule, original_at, now, **changes)
                await self._store.insert_task(record)
            else:
                await self._store.save_task(record, **changes)
        self._announce(record, rule, "dispatch now", now)
        return task_view(record, rule)


def _deleted(now: datetime) -> dict[str, Any]:
    """How a deleted occurrence is kept: skipped for good, so its series never brings it back."""
    return {
        "status": TaskStatus.skipped.value,
        "status_reason": "deleted",
        "enabled": False,
        "edited": True,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
    }


def _computed_occurrence(rule: RuleRecord, original_at: datetime, now: datetime) -> bool:
    """Whether ``original_at`` is an occurrence of ``rule`` that is not stored yet but will be."""
    stored_until = rule.expanded_until or now
    return original_at > stored_until and recurrence_of(rule).contains(original_at)


def _unstored(
    rules: list[RuleRecord], start: datetime | None, end: datetime, taken: set[tuple[int, datetime]]
) -> Iterator[tuple[RuleRecord, datetime]]:
    """Each rule's occurrences in [start, end) past its stored ones, except those in ``taken``."""
    for rule in rules:
        # Subtracting only where start is past the stored ones: the earliest datetime has no predecessor.
        after = (
            rule.expanded_until if start is None or start <= rule.expanded_until else start - SMALLEST_STEP
        )
        for t in recurrence_of(rule).between(after, end - SMALLEST_STEP):
            if (rule.id, t) not in taken:
                yield rule, t


def _as_utc(value: datetime, zone: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    try:
        return whole_millis(value.astimezone(timezone.utc))
    except OverflowError:
        raise Invalid.at(("scheduled_at",), "out of range") from None
