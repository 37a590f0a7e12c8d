"""Run history: list and purge attempts; summarise a rule's latest one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from task_scheduler.domain.errors import Invalid, NotFound
from task_scheduler.domain.storable import shown
from task_scheduler.storage.orm import RunRecord
from task_scheduler.storage.store import Store


class RunView(BaseModel):
    id: int
    task_id: str
    rule_id: int | None
    attempt: int
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    outcome: str = Field(description="succeeded, failed, rejected, timeout or unknown")
    fleet_task_id: str | None
    response: Any = Field(None, description="The fleet's answer (bounded excerpt).")
    error: str | None
    replica: str


class RuleStatus(BaseModel):
    rule_id: int
    enabled: bool
    paused: bool = Field(description="Paused by itself after too many failed occurrences in a row.")
    paused_reason: str | None
    consecutive_failures: int
    last_run_at: datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    last_response: Any = None
    last_fleet_task_id: str | None = None
    last_duration_ms: float | None = None


def run_view(record: RunRecord) -> RunView:
    view = RunView.model_validate(record, from_attributes=True)
    view.response = shown(view.response)  # whatever a row holds, it can be shown
    return view


class RunService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, limit: int, offset: int, **filters: Any) -> tuple[list[RunView], int]:
        records, total = await self._store.list_runs(limit=limit, offset=offset, **filters)
        return [run_view(r) for r in records], total

    async def purge(
        self,
        *,
        rule_id: int | None,
        task_id: str | None,
        outcome: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> int:
        """Remove the runs matching every filter given; without any, nothing (wiping the whole
        history is never what a client meant)."""
        filters = {"rule_id": rule_id, "task_id": task_id, "outcome": outcome, "start": start, "end": end}
        if all(value is None for value in filters.values()):
            raise Invalid.at(
                ("query",), "name at least one filter: before, start, end, rule_id, task_id or status"
            )
        return await self._store.delete_runs(**filters)

    async def rule_status(self, rule_id: int) -> RuleStatus:
        rule = await self._store.get_rule(rule_id)
        if rule is None:
            raise NotFound("rule", rule_id)
        status = RuleStatus(
            rule_id=rule.id,
            enabled=rule.enabled,
            paused=rule.paused_reason is not None,
            paused_reason=rule.paused_reason,
            consecutive_failures=rule.consecutive_failures,
        )
        last = await self._store.last_run(rule_id)
        if last is not None:
            status.last_run_at = last.started_at
            status.last_outcome = last.outcome
            status.last_error = last.error
            status.last_response = shown(last.response)
            status.last_fleet_task_id = last.fleet_task_id
            status.last_duration_ms = last.duration_ms
        return status
