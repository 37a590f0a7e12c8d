"""Rule use cases: validate, store, change and preview rules; keep their tasks in step."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from task_scheduler.clock import Clock
from task_scheduler.domain.allowlist import Allowlist, refused_urls
from task_scheduler.domain.errors import Conflict, Invalid, NotFound
from task_scheduler.domain.recurrence import Recurrence, follow_slots, rrule_problems, validate_timezone
from task_scheduler.domain.rules import DroppedException, NewRule, ReplacedRule, Rule, RuleSpec
from task_scheduler.domain.schedule import whole_millis
from task_scheduler.domain.storable import require_storable
from task_scheduler.domain.tasks import task_id
from task_scheduler.events import Event, EventBus, EventType
from task_scheduler.kinds.base import TaskKind
from task_scheduler.kinds.registry import Registry
from task_scheduler.services.expander import EXHAUSTED, Expander
from task_scheduler.services.occurrences import (
    SMALLEST_STEP,
    TaskView,
    due_at,
    local_iso,
    new_task_record,
    recurrence_of,
    rule_view,
    task_view,
)
from task_scheduler.services.off_loop import off_loop
from task_scheduler.services.targets import TargetService
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from task_scheduler.storage.retry import retrying
from task_scheduler.storage.store import Store


class Occurrence(BaseModel):
    utc: datetime = Field(description="The occurrence in UTC.")
    local: str = Field(description="The same instant in the rule's time zone (ISO 8601 with offset).")


@dataclass(frozen=True)
class _NewRule:
    """A rule checked and planned, ready to store."""

    spec: NewRule
    columns: dict[str, Any]
    upcoming: list[datetime]
    times: list[datetime]
    until: datetime | None


class RuleService:
    def __init__(
        self,
        store: Store,
        expander: Expander,
        clock: Clock,
        *,
        targets: TargetService,
        events: EventBus,
        changed: Callable[[datetime | None], None],
        default_timezone: str,
        registry: Registry,
        allowlist: Allowlist,
    ) -> None:
        self._store = store
        self._expander = expander
        self._clock = clock
        self._targets = targets
        self._events = events
        self._changed = changed
        self._default_timezone = default_timezone
        self._registry = registry
        self._allowlist = allowlist

    # -- validation ----------------------------------------------------------------------

    def _resolve(
        self, spec: RuleSpec, now: datetime, start_delay_s: float | None = None
    ) -> tuple[str, Recurrence, list[datetime], dict[str, Any], TaskKind, BaseModel]:
        """Check what pydantic cannot (zone, the kind's own checks, the allowlist, reachability,
        an rrule dateutil would search for long); fill the start. Also returns the first occurrence
        after now, as a list of one."""
        zone_name = spec.timezone or self._default_timezone
        try:
            zone = validate_timezone(zone_name)
        except ValueError as exc:
            raise Invalid.at(("timezone",), str(exc)) from None
        kind, task = self._registry.task(spec.task.model_dump(mode="json", exclude_none=True))
        refused = refused_urls(self._allowlist, kind.urls(task))
        if refused:
            raise Invalid([(("task", *field), reason) for field, reason in refused])
        schedule = spec.schedule
        if start_delay_s is not None:
            if schedule.start is not None:
                raise Invalid.at(("start_delay_s",), "give schedule.start or start_delay_s, not both")
            start = now + timedelta(seconds=start_delay_s)
            schedule = schedule.model_copy(update={"start": whole_millis(start.astimezone(zone))})
        elif schedule.start is None:
            schedule = schedule.model_copy(update={"start": now.astimezone(zone).replace(microsecond=0)})
        problems = rrule_problems(schedule)
        if problems:
            raise Invalid([(("schedule", "rrule"), problem) for problem in problems])
        recurrence = Recurrence(schedule, zone, default_start=now)
        upcoming = recurrence.next_after(now, 1)
        if not upcoming:
            raise Invalid.at(("schedule",), "the schedule produces no occurrence after now")
        return zone_name, recurrence, upcoming, schedule.model_dump(mode="json"), kind, task

    def _columns(
        self,
        spec: RuleSpec,
        zone_name: str,
        schedule: dict[str, Any],
        kind: TaskKind,
        task: BaseModel,
        target: str,
    ) -> dict[str, Any]:
        """The rule's columns, its documents and texts checked to fit what can be stored
        (whatever the rule came from: JSON, an .ics file, the dashboard's contract)."""
        document = task.model_dump(mode="json", exclude_none=True)
        require_storable(document, ("task",))
        require_storable(spec.metadata, ("metadata",))
        require_storable({"name": spec.name, "description": spec.description, "channel": spec.channel}, ())
        return {
            "name": spec.name,
            "description": spec.description,
            "timezone": zone_name,
            "enabled": spec.enabled,
            "schedule": schedule,
            "task": document,
            "policy": spec.policy.model_dump(mode="json"),
            "metadata": spec.metadata,
            "task_kind": kind.name,
            "category": kind.category(task),
            "target": target,
            "channel": spec.channel,
        }

    # -- queries -------------------------------------------------------------------------

    async def _get(self, rule_id: int, *, for_update: bool = False) -> RuleRecord:
        record = await self._store.get_rule(rule_id, for_update=for_update)
        if record is None:
            raise NotFound("rule", rule_id)
        return record

    async def get(self, rule_id: int) -> Rule:
        return rule_view(await self._get(rule_id), self._clock.now())

    async def list(
        self,
        *,
        enabled: bool | None,
        category: str | None,
        name: str | None,
        kind: str | None,
        target: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Rule], int]:
        records, total = await self._store.list_rules(
            enabled=enabled,
            category=category,
            name_contains=name,
            kind=kind,
            target=target,
            limit=limit,
            offset=offset,
        )
        now = self._clock.now()
        return await off_loop(lambda: [rule_view(record, now) for record in records]), total

    async def preview(self, spec: RuleSpec, count: int) -> list[Occurrence]:
        now = self._clock.now()

        def compute() -> list[Occurrence]:
            zone_name, recurrence, *_ = self._resolve(spec, now)
            return self._occurrences(recurrence, zone_name, now, count)

        return await off_loop(compute)

    async def preview_stored(self, rule_id: int, count: int) -> list[Occurrence]:
        record = await self._get(rule_id)
        now = self._clock.now()
        return await off_loop(lambda: self._occurrences(recurrence_of(record), record.timezone, now, count))

    @staticmethod
    def _occurrences(recurrence: Recurrence, zone_name: str, now: datetime, count: int) -> list[Occurrence]:
        """The next ``count`` occurrences from the start, or from now once the start has passed."""
        first = recurrence.first()
        if first is None:
            return []
        after = max(first, now) - SMALLEST_STEP
        return [Occurrence(utc=t, local=local_iso(t, zone_name)) for t in recurrence.next_after(after, count)]

    # -- changes -------------------------------------------------------------------------

    def _announce(
        self, kind: EventType, record: RuleRecord, now: datetime, *, due_at: datetime | None = None
    ) -> None:
        """Tell the dispatcher to look again (``due_at``: the earliest new task, if that is
        all that changed), and subscribers what changed."""
        self._changed(due_at)
        self._events.publish(
            Event(type=kind, at=now, rule_id=record.id, channel=record.channel, data={"name": record.name})
        )

    async def _target(self, kind: TaskKind, task: BaseModel) -> str:
        """The name of the target the task goes through, checked to exist and to carry its kind
        (and so are the other targets it uses)."""
        for field, other in kind.other_targets(task):
            await self._carrier(kind, other, ("task", *field))
        name = getattr(task, "target", None)
        if name is None:
            if kind.direct_target is None:
                raise Invalid.at(("task", "target"), f"{kind.name} tasks need a target; see /targets")
            return kind.direct_target
        problems = kind.check_target(task, await self._carrier(kind, name, ("task", "target")))
        if problems:
            raise Invalid([(("task", *path), message) for path, message in problems])
        return name

    async def _carrier(self, kind: TaskKind, name: str, field: tuple[str | int, ...]) -> BaseModel:
        """The configuration of target ``name``, checked to exist and to carry ``kind``."""
        resolved = await self._targets.resolve(name)
        if resolved is None:
            raise Invalid.at(field, f"no target named {name!r}; see /targets")
        target_kind = getattr(resolved[0], "kind", None)
        if target_kind not in kind.target_kinds:
            carriers = " or ".join(sorted(kind.target_kinds))
            raise Invalid.at(
                field, f"{name!r} is a {target_kind} target; {kind.name} tasks go through {carriers}"
            )
        return resolved[0]

    async def _prepare(self, spec: NewRule, now: datetime) -> _NewRule:
        """Everything about a new rule that needs no write: 422 for what is wrong with it."""
        zone_name, recurrence, upcoming, schedule, kind, task = await off_loop(
            lambda: self._resolve(spec, now, spec.start_delay_s)
        )
        target = await self._target(kind, task)
        if spec.run_now and not spec.enabled:
            raise Invalid.at(("run_now",), "a disabled rule does not run; enable it or drop run_now")
        times, until = self._expander.plan(recurrence, now, now) if spec.enabled else ([], None)
        columns = self._columns(spec, zone_name, schedule, kind, task, target)
        return _NewRule(spec, columns, upcoming, times, until)

    async def _insert(self, new: _NewRule, now: datetime, by: str | None) -> RuleRecord:
        """Store a prepared rule and its first occurrences (inside the caller's transaction)."""
        record = await self._store.insert_rule(
            **new.columns,
            expanded_until=new.until,
            created_at=now,
            updated_at=now,
            created_by=by,
            updated_by=by,
        )
        await self._expander.store(record, new.times, now)
        if new.spec.run_now:
            await self._store.insert_task(self._extra_run(record, now))
        return record

    def _created(self, new: _NewRule, record: RuleRecord, now: datetime) -> Rule:
        """Announce a stored rule; its view."""
        self._expander.announce(record, new.times, now)
        # A new rule only adds tasks: the dispatcher needs waking only for one due sooner
        # than it would look anyway.
        first_due = now if new.spec.run_now else due_at(record, new.times[0]) if new.times else EXHAUSTED
        self._announce(EventType.rule_created, record, now, due_at=first_due)
        return rule_view(record, now, new.upcoming)

    @retrying
    async def create(self, spec: NewRule, *, by: str | None) -> Rule:
        """``by``: the user creating it (None when authentication is off)."""
        now = self._clock.now()
        new = await self._prepare(spec, now)
        async with self._store.transaction():
            record = await self._insert(new, now, by)
        return self._created(new, record, now)

    @retrying
    async def create_many(self, specs: list[NewRule], *, by: str | None) -> list[Rule]:
        """Create every rule or none: one transaction; 422 names each bad rule by its index."""
        now = self._clock.now()
        prepared: list[_NewRule] = []
        problems: list[tuple[tuple[str | int, ...], str]] = []
        first_with: dict[str, int] = {}
        for index, spec in enumerate(specs):
            if first_with.setdefault(spec.name, index) != index:
                problems.append(
                    ((index, "name"), f"the same name as rule {first_with[spec.name]} of this batch")
                )
            try:
                prepared.append(await self._prepare(spec, now))
            except Invalid as exc:
                problems += [((index, *loc), message) for loc, message in exc.problems]
        if problems:
            raise Invalid(problems)
        async with self._store.transaction():
            records = [await self._insert(new, now, by) for new in prepared]
        return [self._created(new, record, now) for new, record in zip(prepared, records, strict=True)]

    async def replace(self, rule_id: int, spec: RuleSpec, *, by: str | None) -> ReplacedRule:
        """Edit the series: future untouched tasks are regenerated; each individually edited
        one follows its day and slot into the new series, or is dropped (and listed) when
        the new series has no such slot, or has it only in the past."""
        return await self.edit(rule_id, lambda _: spec, by=by)

    @retrying
    async def edit(
        self, rule_id: int, change: Callable[[RuleRecord], RuleSpec], *, by: str | None
    ) -> ReplacedRule:
        """Replace the rule with what ``change`` makes of it as stored, read with the rule
        locked, so that two edits each made from what they read cannot undo one another."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            spec = change(record)
            zone_name, recurrence, upcoming, schedule, kind, task = await off_loop(
                lambda: self._resolve(spec, now)
            )
            target = await self._target(kind, task)
            before = recurrence_of(record)
            await self._store.delete_future_tasks(rule_id, now, keep_edited=True)
            if record.task_kind != kind.name:  # an occurrence's own request was for the old kind
                await self._store.drop_own_requests(rule_id)
            await self._store.save_rule(
                record,
                **self._columns(spec, zone_name, schedule, kind, task, target),
                expanded_until=now if spec.enabled else None,
                updated_at=now,
                updated_by=by,
            )
            await self._store.update_scheduled_copies(
                rule_id, record.category, record.target, record.task_kind
            )
            dropped = await self._follow_days(record, before, recurrence, now)
            times = await self._expander.expand(record, now, recurrence) if record.enabled else []
        self._expander.announce(record, times, now)
        self._announce(EventType.rule_updated, record, now)
        view = rule_view(record, now, upcoming)
        return ReplacedRule(**view.model_dump(), dropped_exceptions=dropped)

    async def _follow_days(
        self, record: RuleRecord, before: Recurrence, after: Recurrence, now: datetime
    ) -> list[DroppedException]:
        """Re-key the rule's pending exceptions to the new series' occurrence of the same
        local date and slot (inside the caller's transaction); return the ones dropped."""
        exceptions = [
            task
            for task in await self._store.pending_exceptions(record.id, now)
            if task.id == task_id(record.id, task.original_at)  # not an extra run
        ]
        moves = follow_slots(before, after, [task.original_at for task in exceptions])
        gone: list[TaskRecord] = []
        rekeyed: list[tuple[TaskRecord, TaskRecord]] = []  # (as stored, as it becomes)
        for task in exceptions:
            new_at = moves.get(task.original_at, task.original_at)
            if new_at == task.original_at:
                continue  # not an occurrence of the old series, or its slot did not move
            moved = task.scheduled_at != task.original_at
            if new_at is None or (not moved and new_at <= now):
                gone.append(task)
                continue
            copy = new_task_record(
                record,
                new_at,
                now,
                scheduled_at=task.scheduled_at if moved else new_at,
                due_at=task.due_at if moved else due_at(record, new_at),
                status=task.status,
                status_reason=task.status_reason,
                enabled=task.enabled,
                edited=True,
                request=task.request,
                category=task.category,
                created_at=task.created_at,
            )
            rekeyed.append((task, copy))
        # A key held by a task that is not one of these (one already run) cannot be taken.
        held = await self._store.stored_task_ids(copy.id for _, copy in rekeyed)
        held -= {task.id for task in exceptions}
        gone += [task for task, copy in rekeyed if copy.id in held]
        rekeyed = [(task, copy) for task, copy in rekeyed if copy.id not in held]
        await self._store.delete_task_ids([task.id for task in gone] + [task.id for task, _ in rekeyed])
        await self._store.insert_tasks([copy for _, copy in rekeyed])
        return [
            DroppedException(
                id=task.id,
                original_at=task.original_at,
                scheduled_at=task.scheduled_at,
                status=task.status,
            )
            for task in sorted(gone, key=lambda task: task.original_at)
        ]

    @retrying
    async def set_enabled(self, rule_id: int, enabled: bool, *, by: str | None) -> Rule:
        """Disabling drops the rule's future untouched tasks; enabling regenerates them from now."""
        now = self._clock.now()
        times: list[datetime] = []
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            if record.enabled != enabled:
                if not enabled:
                    await self._store.delete_future_tasks(rule_id, now, keep_edited=True)
                await self._store.save_rule(
                    record,
                    enabled=enabled,
                    expanded_until=now if enabled else None,
                    updated_at=now,
                    updated_by=by,
                )
                if enabled:
                    times = await self._expander.expand(record, now)
        self._expander.announce(record, times, now)
        self._announce(EventType.rule_enabled if enabled else EventType.rule_disabled, record, now)
        return rule_view(record, now)

    @retrying
    async def delete(self, rule_id: int) -> None:
        """Remove the rule and every occurrence it has not run yet; past tasks stay as history."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            await self._store.delete_rules([rule_id], now)
        self._announce(EventType.rule_deleted, record, now)

    @retrying
    async def delete_all(self) -> tuple[int, int]:
        """Delete every rule as ``delete`` does one, in one transaction; return how many rules
        and how many of their occurrences not run yet were removed."""
        now = self._clock.now()
        async with self._store.transaction():
            rule_ids = await self._store.lock_all_rules()
            tasks = await self._store.delete_rules(rule_ids, now)
        if rule_ids:
            self._changed(None)
            data = {"action": "delete all", "count": len(rule_ids)}
            self._events.publish(Event(type=EventType.rule_deleted, at=now, data=data))
        return len(rule_ids), tasks

    @retrying
    async def reset_attempts(self, rule_id: int, *, by: str | None) -> Rule:
        """Resume a rule that paused itself after failing occurrences in a row."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            await self._store.save_rule(
                record, consecutive_failures=0, paused_reason=None, updated_at=now, updated_by=by
            )
        self._announce(EventType.rule_updated, record, now)
        return rule_view(record, now)

    @staticmethod
    def _extra_run(record: RuleRecord, now: datetime) -> TaskRecord:
        """An occurrence besides the schedule's, due now."""
        return new_task_record(
            record, now, now, id=f"{record.id}-run-{uuid.uuid4().hex[:16]}", due_at=now, edited=True
        )

    @retrying
    async def run_now(self, rule_id: int) -> TaskView:
        """An extra, ad-hoc occurrence of the rule, due at once."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id)
            if not record.enabled:
                raise Conflict(f"rule {rule_id} is disabled; enable it to run it")
            task = self._extra_run(record, now)
            await self._store.insert_task(task)
        self._changed()
        self._events.publish(
            Event(
                type=EventType.task_updated,
                at=now,
                rule_id=rule_id,
                task_id=task.id,
                channel=record.channel,
                data={"action": "run now"},
            )
        )
        return task_view(task, record)
