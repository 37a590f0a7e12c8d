"""Turn stored rules into recurrences and occurrences into task records or views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.rules import Rule
from task_scheduler.domain.schedule import schedule_adapter
from task_scheduler.domain.storable import shown
from task_scheduler.domain.tasks import TaskStatus, task_id
from task_scheduler.storage.claimed import ClaimedTask, DispatchRule
from task_scheduler.storage.orm import RuleRecord, TaskRecord


class TaskView(BaseModel):
    """One occurrence, stored or computed, as the API returns it."""

    id: str = Field(description="Stable: derived from the rule and the original time.")
    rule_id: int | None
    scheduled_at: datetime = Field(description="When it runs (UTC); differs from original_at once moved.")
    original_at: datetime = Field(description="The occurrence time the rule produced (UTC).")
    local_time: str | None = Field(None, description="scheduled_at in the rule's time zone.")
    status: TaskStatus
    status_reason: str | None = None
    enabled: bool
    materialized: bool = Field(description="Stored in the database (false: computed on the fly).")
    edited: bool = Field(description="Individually edited; kept when the series changes.")
    category: str | None = None
    kind: str = Field(description="Task kind (rmf, http, sql, file, ...): its rule's, or its own if ad hoc.")
    request: dict[str, Any] = Field(description="The request it will send (its own or the rule's).")


# Turns an exclusive bound into an inclusive one for Recurrence.between.
SMALLEST_STEP = timedelta(microseconds=1)


def recurrence_of(record: RuleRecord) -> Recurrence:
    schedule = schedule_adapter.validate_python(record.schedule)
    return Recurrence(schedule, ZoneInfo(record.timezone), default_start=record.created_at)


def rule_view(record: RuleRecord, now: datetime, upcoming: list[datetime] | None = None) -> Rule:
    """``upcoming``: the rule's next occurrence after ``now`` (``next_after(now, 1)``), when the
    caller has it already: for a rare rule, finding it is most of the cost."""
    next_at = None
    if record.enabled:
        if upcoming is None:
            upcoming = recurrence_of(record).next_after(now, 1)
        next_at = upcoming[0] if upcoming else None
    return Rule.model_validate(
        {
            "id": record.id,
            "name": record.name,
            "description": record.description,
            "timezone": record.timezone,
            "enabled": record.enabled,
            "schedule": record.schedule,
            # Free-form documents as they can be shown, whatever a row holds (see storable.shown).
            "task": shown(record.task),
            "policy": record.policy,
            "metadata": shown(record.metadata),
            "channel": record.channel,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "created_by": record.created_by,
            "updated_by": record.updated_by,
            "next_at": next_at,
        }
    )


def local_iso(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).isoformat()


def due_at(rule: RuleRecord, scheduled_at: datetime) -> datetime:
    """When the dispatcher acts on an occurrence: its time less the rule's lead time."""
    return scheduled_at - timedelta(seconds=rule.policy.get("lead_time_s", 0.0))


def new_task_record(rule: RuleRecord, original_at: datetime, now: datetime, **overrides: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "id": task_id(rule.id, original_at),
        "rule_id": rule.id,
        "original_at": original_at,
        "scheduled_at": original_at,
        "status": TaskStatus.scheduled.value,
        "enabled": True,
        "edited": False,
        "request": None,
        "category": rule.category,
        "kind": rule.task_kind,
        # Copied, like the category, so that a claim can pass over a saturated target's tasks.
        "target": rule.target,
        "due_at": due_at(rule, original_at),
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return TaskRecord(**values)


def task_document(task: TaskRecord | ClaimedTask, rule: RuleRecord | DispatchRule | None) -> dict[str, Any]:
    """The task document an occurrence runs: its rule's, with an rmf occurrence's own request;
    a task without a rule (a timer) keeps its whole document in ``request``."""
    if rule is None:
        return task.request or {}
    if task.request is not None and rule.task_kind == "rmf":
        return {**rule.task, "request": task.request}
    return rule.task


def _shown_request(document: dict[str, Any]) -> dict[str, Any]:
    """What a task view shows as its request: an rmf task's request, another kind's document."""
    return document.get("request", {}) if document.get("kind", "rmf") == "rmf" else document


def task_view(task: TaskRecord, rule: RuleRecord | None) -> TaskView:
    request = _shown_request(task_document(task, rule))
    return TaskView(
        id=task.id,
        rule_id=task.rule_id,
        scheduled_at=task.scheduled_at.astimezone(timezone.utc),
        original_at=task.original_at.astimezone(timezone.utc),
        local_time=local_iso(task.scheduled_at, rule.timezone) if rule else None,
        status=TaskStatus(task.status),
        status_reason=task.status_reason,
        enabled=task.enabled and (rule.enabled if rule else True),
        materialized=True,
        edited=task.edited,
        category=task.category,
        kind=task.kind,
        request=shown(request),
    )


def computed_view(rule: RuleRecord, original_at: datetime) -> TaskView:
    return TaskView(
        id=task_id(rule.id, original_at),
        rule_id=rule.id,
        scheduled_at=original_at,
        original_at=original_at,
        local_time=local_iso(original_at, rule.timezone),
        status=TaskStatus.scheduled,
        enabled=rule.enabled,
        materialized=False,
        edited=False,
        category=rule.category,
        kind=rule.task_kind,
        request=shown(_shown_request(rule.task)),
    )
