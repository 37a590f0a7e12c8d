"""The RMF dashboard's scheduled tasks, each kept as a rule (see domain.scheduled_tasks).

Every change goes through the rule service, so a scheduled task is expanded, dispatched
exactly once, listed under /tasks and /rules, and its one-off exceptions keep their day,
like any rule's. The api-server's messages are kept where a client may show them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from task_scheduler.clock import Clock
from task_scheduler.domain import cpu
from task_scheduler.domain.errors import Invalid, NotFound
from task_scheduler.domain.rules import NewRule, RuleSpec
from task_scheduler.domain.schedule import parse_schedule
from task_scheduler.domain.scheduled_tasks import (
    METADATA_KEY,
    ScheduledTask,
    ScheduledTaskBody,
    check_until,
    instant,
    listed,
    local_date,
    scheduled_task,
    to_schedule,
)
from task_scheduler.services.rules import RuleService
from task_scheduler.storage.orm import RuleRecord
from task_scheduler.storage.store import Store

ORDER_FIELDS = ("id", "created_by", "start_from", "until")


class ScheduledTaskService:
    def __init__(self, store: Store, rules: RuleService, clock: Clock, *, timezone: str) -> None:
        """``timezone``: the service's, in which every schedule's ``at`` is wall-clock time."""
        self._store = store
        self._rules = rules
        self._clock = clock
        self._zone = ZoneInfo(timezone)

    def _shown(self, record: RuleRecord) -> ScheduledTask | None:
        """The rule as a scheduled task (without its last run); None if it cannot be one."""
        if record.task_kind != "rmf":
            return None
        return scheduled_task(
            rule_id=record.id,
            timezone=record.timezone,
            schedule=parse_schedule(record.schedule),
            request=record.task["request"],
            metadata=record.metadata,
            created_by=record.created_by,
            zone=self._zone,
            last_ran=None,
        )

    async def _record(self, task_id: int) -> tuple[RuleRecord, ScheduledTask]:
        """The rule behind a scheduled task; NotFound for any rule the contract cannot say."""
        record = await self._store.get_rule(task_id)
        view = self._shown(record) if record is not None else None
        if record is None or view is None:
            raise NotFound("scheduled task", task_id)
        last = await self._store.last_run_times([task_id])
        return record, view.model_copy(update={"last_ran": last.get(task_id)})

    async def get(self, task_id: int) -> ScheduledTask:
        return (await self._record(task_id))[1]

    async def list(
        self, *, start_before: datetime, until_after: datetime, order_by: list[str], limit: int, offset: int
    ) -> list[ScheduledTask]:
        """The tasks that may have occurrences between ``until_after`` and ``start_before``
        (without an offset: wall-clock times in the service's zone)."""
        start_before, until_after = instant(start_before, self._zone), instant(until_after, self._zone)
        found = []
        for record in await self._store.rules_of_kind("rmf"):
            cpu.check()
            view = self._shown(record)
            if view is not None and listed(view, start_before, until_after):
                found.append(view)
        for key in reversed(order_by):  # the first key sorts last, so it decides
            name = key.removeprefix("-")
            found.sort(key=lambda view: _sort_key(getattr(view, name)), reverse=key.startswith("-"))
        page = found[offset : offset + limit]
        last = await self._store.last_run_times(view.id for view in page)
        return [view.model_copy(update={"last_ran": last.get(view.id)}) for view in page]

    async def create(self, body: ScheduledTaskBody, *, by: str | None) -> ScheduledTask:
        now = self._clock.now()
        schedule = to_schedule(body, self._zone, anchor=now.replace(microsecond=0))
        check_until(body, self._zone, now)
        metadata = {METADATA_KEY: {"open_start": body.start_from is None}}
        spec = _spec(
            NewRule,
            name=f"scheduled task {uuid.uuid4().hex[:12]}",
            description="Made through /scheduled_tasks (the RMF dashboard).",
            timezone=self._zone.key,
            schedule=schedule,
            task={"kind": "rmf", "request": body.task_request.model_dump(exclude_none=True)},
            metadata=metadata,
        )
        rule = await _contract_errors(self._rules.create(spec, by=by))
        return await self.get(rule.id)

    async def update(self, task_id: int, body: ScheduledTaskBody, *, by: str | None) -> ScheduledTask:
        """Replace the task request and schedules. ``start_from``, ``until`` and
        ``except_dates`` left out of the body stay as they are (the dashboard leaves them
        out when it edits a series); given, even as null or [], they replace the old ones."""
        await self._record(task_id)
        if "until" in body.model_fields_set:  # one kept that has passed leaves the rule's own check
            check_until(body, self._zone, self._clock.now())

        def changes(record: RuleRecord, view: ScheduledTask) -> dict[str, Any]:
            given = body.model_fields_set
            kept: dict[str, Any] = {
                name: getattr(view, name) for name in ("start_from", "until") if name not in given
            }
            if "except_dates" not in given:
                kept["except_dates"] = [
                    datetime.combine(day, datetime.min.time()) for day in view.except_dates
                ]
            new = body.model_copy(update=kept)
            return {
                # Without start_from, `every` N counts from the creation, as before the update.
                "schedule": to_schedule(new, self._zone, anchor=record.created_at.replace(microsecond=0)),
                "task": {**record.task, "request": new.task_request.model_dump(exclude_none=True)},
                "metadata": {**record.metadata, METADATA_KEY: {"open_start": new.start_from is None}},
            }

        await self._edit(task_id, changes, by=by)
        return await self.get(task_id)

    async def except_date(self, task_id: int, when: datetime, *, by: str | None) -> None:
        """No occurrence on the date of ``when`` in the service's zone (again: no change)."""
        _, view = await self._record(task_id)
        day = local_date(when, self._zone)
        if day in view.except_dates:
            return

        def changes(record: RuleRecord, view: ScheduledTask) -> dict[str, Any]:
            days = sorted({*record.schedule["except_dates"], day.isoformat()})
            return {"schedule": {**record.schedule, "except_dates": days}}

        await self._edit(task_id, changes, by=by)

    async def delete(self, task_id: int) -> None:
        await self._record(task_id)
        await self._rules.delete(task_id)

    async def _edit(
        self,
        task_id: int,
        changes: Callable[[RuleRecord, ScheduledTask], dict[str, Any]],
        *,
        by: str | None,
    ) -> None:
        """Edit the task's rule with ``changes`` made from it as stored, read with the rule
        locked: an except date added meanwhile is never undone."""

        def spec(record: RuleRecord) -> RuleSpec:
            view = self._shown(record)
            if view is None:  # edited at /rules since it was looked up
                raise NotFound("scheduled task", task_id)
            fields = {name: getattr(record, name) for name in RuleSpec.model_fields}
            return _spec(RuleSpec, **{**fields, **changes(record, view)})

        await _contract_errors(self._rules.edit(task_id, spec, by=by))


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def _spec(model: type[RuleSpec], **fields: Any) -> RuleSpec:
    """The rule for a scheduled task; a request this service cannot hold is a 422 naming it."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Invalid([(_contract_loc(tuple(e["loc"])), e["msg"]) for e in exc.errors()]) from None


def _contract_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A rule's field as the scheduled task names it."""
    if "request" in loc:
        return ("task_request", *loc[loc.index("request") + 1 :])
    if loc and loc[0] == "schedule":
        return ("schedules",)
    return loc


async def _contract_errors(call: Any) -> Any:
    try:
        return await call
    except Invalid as exc:
        raise Invalid([(_contract_loc(loc), message) for loc, message in exc.problems]) from None
