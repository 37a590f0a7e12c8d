"""Rule use cases: validate, store, change and preview rules; keep their tasks in step."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from task_scheduler.clock import Clock
from task_scheduler.domain.errors import Conflict, Invalid, NotFound
from task_scheduler.domain.recurrence import Recurrence, validate_timezone
from task_scheduler.domain.rmf_schema import RmfValidationError, validate_task_request
from task_scheduler.domain.rules import Rule, RuleSpec
from task_scheduler.events import Event, EventBus, EventType
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
from task_scheduler.services.targets import TargetService
from task_scheduler.storage.orm import RuleRecord
from task_scheduler.storage.store import Store


class Occurrence(BaseModel):
    utc: datetime = Field(description="The occurrence in UTC.")
    local: str = Field(description="The same instant in the rule's time zone (ISO 8601 with offset).")


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
        extra_categories: Mapping[str, Mapping[str, Any] | None],
    ) -> None:
        self._store = store
        self._expander = expander
        self._clock = clock
        self._targets = targets
        self._events = events
        self._changed = changed
        self._default_timezone = default_timezone
        self._extra_categories = extra_categories

    # -- validation ----------------------------------------------------------------------

    def _resolve(self, spec: RuleSpec, now: datetime) -> tuple[str, Recurrence, dict[str, Any]]:
        """Check what pydantic cannot (zone, fleet schemas, reachability); fill the start."""
        zone_name = spec.timezone or self._default_timezone
        try:
            zone = validate_timezone(zone_name)
        except ValueError as exc:
            raise Invalid.at(("timezone",), str(exc)) from None
        try:
            validate_task_request(spec.task.request.model_dump(exclude_none=True), self._extra_categories)
        except RmfValidationError as exc:
            raise Invalid([(("task", "request", *path), message) for path, message in exc.problems]) from None
        schedule = spec.schedule
        if schedule.start is None:
            schedule = schedule.model_copy(update={"start": now.astimezone(zone).replace(microsecond=0)})
        recurrence = Recurrence(schedule, zone, default_start=now)
        if not recurrence.next_after(now, 1):
            raise Invalid.at(("schedule",), "the schedule produces no occurrence after now")
        return zone_name, recurrence, schedule.model_dump(mode="json")

    def _columns(self, spec: RuleSpec, zone_name: str, schedule: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": spec.name,
            "description": spec.description,
            "timezone": zone_name,
            "enabled": spec.enabled,
            "schedule": schedule,
            "task": spec.task.model_dump(mode="json", exclude_none=True),
            "policy": spec.policy.model_dump(mode="json"),
            "metadata": spec.metadata,
            "task_kind": spec.task.kind,
            "category": spec.task.request.category,
            "target": spec.task.target,
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
        self, *, enabled: bool | None, category: str | None, name: str | None, limit: int, offset: int
    ) -> tuple[list[Rule], int]:
        records, total = await self._store.list_rules(
            enabled=enabled, category=category, name_contains=name, limit=limit, offset=offset
        )
        now = self._clock.now()
        return [rule_view(record, now) for record in records], total

    def preview(self, spec: RuleSpec, count: int) -> list[Occurrence]:
        now = self._clock.now()
        zone_name, recurrence, _ = self._resolve(spec, now)
        return self._occurrences(recurrence, zone_name, now, count)

    async def preview_stored(self, rule_id: int, count: int) -> list[Occurrence]:
        record = await self._get(rule_id)
        return self._occurrences(recurrence_of(record), record.timezone, self._clock.now(), count)

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

    async def _check_target(self, spec: RuleSpec) -> None:
        if not await self._targets.exists(spec.task.target):
            raise Invalid.at(("task", "target"), f"no target named {spec.task.target!r}; see /targets")

    async def create(self, spec: RuleSpec, *, by: str | None) -> Rule:
        """``by``: the user creating it (None when authentication is off)."""
        now = self._clock.now()
        zone_name, recurrence, schedule = self._resolve(spec, now)
        await self._check_target(spec)
        times, until = self._expander.plan(recurrence, now, now) if spec.enabled else ([], None)
        async with self._store.transaction():
            record = await self._store.insert_rule(
                **self._columns(spec, zone_name, schedule),
                expanded_until=until,
                created_at=now,
                updated_at=now,
                created_by=by,
                updated_by=by,
            )
            await self._expander.store(record, times, now)
        self._expander.announce(record, times, now)
        # A new rule only adds tasks: the dispatcher needs waking only for one due sooner
        # than it would look anyway.
        first_due = due_at(record, times[0]) if times else EXHAUSTED
        self._announce(EventType.rule_created, record, now, due_at=first_due)
        return rule_view(record, now, recurrence)

    async def replace(self, rule_id: int, spec: RuleSpec, *, by: str | None) -> Rule:
        """Edit the series: future untouched tasks are regenerated, edited ones kept."""
        now = self._clock.now()
        zone_name, recurrence, schedule = self._resolve(spec, now)
        await self._check_target(spec)
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            await self._store.delete_future_tasks(rule_id, now, keep_edited=True)
            await self._store.save_rule(
                record,
                **self._columns(spec, zone_name, schedule),
                expanded_until=now if spec.enabled else None,
                updated_at=now,
                updated_by=by,
            )
            await self._store.update_scheduled_copies(rule_id, record.category, record.target)
            times = await self._expander.expand(record, now, recurrence) if record.enabled else []
        self._expander.announce(record, times, now)
        self._announce(EventType.rule_updated, record, now)
        return rule_view(record, now, recurrence)

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

    async def delete(self, rule_id: int) -> None:
        """Remove the rule and every occurrence it has not run yet; past tasks stay as history."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id, for_update=True)
            await self._store.delete_future_tasks(rule_id, now, keep_edited=False)
            await self._store.delete_rule(rule_id)
        self._announce(EventType.rule_deleted, record, now)

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

    async def run_now(self, rule_id: int) -> TaskView:
        """An extra, ad-hoc occurrence of the rule, due at once."""
        now = self._clock.now()
        async with self._store.transaction():
            record = await self._get(rule_id)
            if not record.enabled:
                raise Conflict(f"rule {rule_id} is disabled; enable it to run it")
            task = new_task_record(
                record, now, now, id=f"{rule_id}-run-{uuid.uuid4().hex[:16]}", due_at=now, edited=True
            )
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
