"""/runs: the history of attempts; purge it by period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from task_scheduler.api.deps import Offset, RuleIdQuery, Services, UtcDatetime, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.services.runs import RunView
from task_scheduler.transports.base import Outcome

router = APIRouter(prefix="/runs", tags=["runs"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]


class RunPage(BaseModel):
    items: list[RunView]
    total: int
    limit: int
    offset: int


class Deleted(BaseModel):
    deleted: int = Field(description="How many runs were removed.")


@router.get("", response_model=RunPage, dependencies=[allow(Role.viewer)])
async def list_runs(
    svc: Svc,
    rule_id: RuleIdQuery = None,
    task_id: str | None = None,
    status: Annotated[Outcome | None, Query(description="The run's outcome.")] = None,
    start: Annotated[UtcDatetime | None, Query(description="Runs started at or after this.")] = None,
    end: Annotated[UtcDatetime | None, Query(description="Runs started before this.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> RunPage:
    """Attempts, newest first."""
    items, total = await svc.runs.list(
        rule_id=rule_id,
        task_id=task_id,
        outcome=status.value if status else None,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )
    return RunPage(items=items, total=total, limit=limit, offset=offset)


@router.delete("", response_model=Deleted, dependencies=[allow(Role.admin)])
async def purge_runs(
    svc: Svc,
    before: Annotated[
        UtcDatetime | None, Query(description="Delete runs started before this (the same as end).")
    ] = None,
    start: Annotated[UtcDatetime | None, Query(description="Delete runs started at or after this.")] = None,
    end: Annotated[UtcDatetime | None, Query(description="Delete runs started before this.")] = None,
    rule_id: RuleIdQuery = None,
    task_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Delete this task's runs.")
    ] = None,
    status: Annotated[Outcome | None, Query(description="Delete runs with this outcome.")] = None,
) -> Deleted:
    """Purge history: the runs matching every filter given, in one transaction; at least one
    filter is required (422 otherwise).  Says how many runs were removed."""
    if before is not None:
        end = min(before, end or before)
    if start and end and end <= start:
        raise Invalid.at(("query", "end"), "end must be after start")
    removed = await svc.runs.purge(
        rule_id=rule_id, task_id=task_id, outcome=status.value if status else None, start=start, end=end
    )
    return Deleted(deleted=removed)
