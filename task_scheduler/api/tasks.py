"""/tasks: occurrences of rules for any window; edit or skip one occurrence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from task_scheduler.api.deps import Offset, RuleIdQuery, Services, UtcDatetime, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.tasks import TaskPatch, TaskStatus
from task_scheduler.services.occurrences import TaskView
from task_scheduler.services.runs import RunView

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]
DEFAULT_WINDOW = timedelta(days=7)


class TaskPage(BaseModel):
    items: list[TaskView]
    total: int
    limit: int
    offset: int
    start: datetime
    end: datetime


@router.get("", response_model=TaskPage, dependencies=[allow(Role.viewer)])
async def list_tasks(
    svc: Svc,
    start: Annotated[UtcDatetime | None, Query(description="Window start (inclusive); default now.")] = None,
    end: Annotated[
        UtcDatetime | None, Query(description="Window end (exclusive); default start + 7 days.")
    ] = None,
    rule_id: RuleIdQuery = None,
    status: TaskStatus | None = None,
    category: Annotated[str | None, Query(description="RMF task category, e.g. clean.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> TaskPage:
    """Occurrences scheduled in the window: stored ones and, past the stored horizon, computed ones."""
    start = start or svc.clock.now()
    try:
        end = end or start + DEFAULT_WINDOW
    except OverflowError:
        raise Invalid.at(("query", "start"), "too far in the future") from None
    if end <= start:
        raise Invalid.at(("query", "end"), "end must be after start")
    items, total = await svc.tasks.list(
        start=start, end=end, rule_id=rule_id, status=status, category=category, limit=limit, offset=offset
    )
    return TaskPage(items=items, total=total, limit=limit, offset=offset, start=start, end=end)


@router.get(
    "/{task_id}", response_model=TaskView, dependencies=[allow(Role.viewer)], responses=Problem.NOT_FOUND
)
async def get_task(task_id: str, svc: Svc) -> TaskView:
    return await svc.tasks.get(task_id)


@router.patch(
    "/{task_id}",
    response_model=TaskView,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def patch_task(task_id: str, patch: TaskPatch, svc: Svc) -> TaskView:
    """Disable/enable, move or give its own request to one occurrence, stored or not yet."""
    return await svc.tasks.patch(task_id, patch)


@router.delete(
    "/{task_id}",
    status_code=204,
    dependencies=[allow(Role.operator)],
    responses={**Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def delete_task(task_id: str, svc: Svc) -> Response:
    """Skip one occurrence for good; it stays listed with status skipped."""
    await svc.tasks.delete(task_id)
    return Response(status_code=204)


@router.get(
    "/{task_id}/runs",
    response_model=list[RunView],
    dependencies=[allow(Role.viewer)],
    responses=Problem.NOT_FOUND,
)
async def task_runs(task_id: str, svc: Svc) -> list[RunView]:
    """Every attempt of this task, newest first."""
    await svc.tasks.get(task_id)  # 404 for an unknown task
    items, _ = await svc.runs.list(
        task_id=task_id, rule_id=None, outcome=None, start=None, end=None, limit=1000, offset=0
    )
    return items


@router.post(
    "/{task_id}/dispatch",
    status_code=202,
    response_model=TaskView,
    dependencies=[allow(Role.operator)],
    responses={**Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def dispatch_task_now(task_id: str, svc: Svc) -> TaskView:
    """Send this occurrence now instead of at its time."""
    return await svc.tasks.dispatch_now(task_id)
