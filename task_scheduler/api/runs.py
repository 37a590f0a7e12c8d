"""/runs: the history of attempts; purge it by period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from task_scheduler.api.deps import Offset, RuleIdQuery, Services, UtcDatetime, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
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
    deleted: int


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
    svc: Svc, before: Annotated[UtcDatetime, Query(description="Delete runs started before this.")]
) -> Deleted:
    """Purge history older than a point in time; says how many runs were removed."""
    return Deleted(deleted=await svc.runs.purge(before))
