"""/scheduled_tasks: rmf-web api-server's contract, so the RMF dashboard's schedule screens
work against this service unchanged. Each scheduled task is a rule (the same id at /rules)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from task_scheduler.api.deps import Offset, Services, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import Caller, allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.schedule import Moment
from task_scheduler.domain.scheduled_tasks import ExceptDate, ScheduledTask, ScheduledTaskBody
from task_scheduler.services.scheduled_tasks import ORDER_FIELDS

router = APIRouter(prefix="/scheduled_tasks", tags=["scheduled tasks"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]
REFUSED = {
    422: {
        "description": "A bad body, or schedules the api-server refuses: `detail` then is its message,"
        " e.g. `Task is never going to run` (no schedules), `Invalid time format for a daily job"
        " (valid format is HH:MM(:SS)?)`, `Cannot schedule a job to run until a time in the past`.",
    }
}
NOT_OURS = {
    404: {
        "description": "No rule with this id, or one the contract cannot show: not made through"
        " /scheduled_tasks, or since edited at /rules into another kind, zone or schedule.",
    }
}


def _order(
    order_by: Annotated[
        str | None,
        Query(description=f"Comma-separated, `-` for descending: {', '.join(ORDER_FIELDS)}. Default: id."),
    ] = None,
) -> list[str]:
    keys = [key.strip() for key in (order_by or "").split(",") if key.strip()]
    for key in keys:
        if key.removeprefix("-") not in ORDER_FIELDS:
            raise Invalid.at(("query", "order_by"), f"{key!r} is not one of {', '.join(ORDER_FIELDS)}")
    return keys


@router.post(
    "",
    status_code=201,
    response_model=ScheduledTask,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **REFUSED},
)
async def create_scheduled_task(body: ScheduledTaskBody, svc: Svc, caller: Caller) -> ScheduledTask:
    """Create a scheduled task: a rule in the service's `timezone`, made by the caller
    (`created_by`: the token's user, `anonymous` with authentication off)."""
    return await svc.scheduled_tasks.create(body, by=caller.username)


@router.get("", response_model=list[ScheduledTask], dependencies=[allow(Role.viewer)])
async def list_scheduled_tasks(
    svc: Svc,
    start_before: Annotated[Moment, Query(description="Tasks with start_from at or before it, or null.")],
    until_after: Annotated[Moment, Query(description="Tasks with until at or after it, or null.")],
    order_by: Annotated[list[str], Depends(_order)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Offset = 0,
) -> list[ScheduledTask]:
    """The scheduled tasks that may have occurrences between `until_after` and `start_before`,
    as a bare array."""
    return await svc.scheduled_tasks.list(
        start_before=start_before, until_after=until_after, order_by=order_by, limit=limit, offset=offset
    )


@router.get("/{task_id}", response_model=ScheduledTask, dependencies=[allow(Role.viewer)], responses=NOT_OURS)
async def get_scheduled_task(task_id: int, svc: Svc) -> ScheduledTask:
    return await svc.scheduled_tasks.get(task_id)


@router.post(
    "/{task_id}/except_date",
    status_code=201,
    response_model=None,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **NOT_OURS},
)
async def add_except_date(task_id: int, body: ExceptDate, svc: Svc, caller: Caller) -> None:
    """No occurrence on the date of `except_date` in the service's zone (answers `null`)."""
    await svc.scheduled_tasks.except_date(task_id, body.except_date, by=caller.username)


@router.post(
    "/{task_id}/update",
    response_model=ScheduledTask,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **REFUSED, **NOT_OURS},
)
async def update_scheduled_task(
    task_id: int, body: ScheduledTaskBody, svc: Svc, caller: Caller
) -> ScheduledTask:
    """Replace the request and schedules; the id stays. `start_from`, `until` and
    `except_dates` left out stay as they were (given as null or [] they are cleared), so
    the dashboard's edit of a series keeps its deleted occurrences deleted."""
    return await svc.scheduled_tasks.update(task_id, body, by=caller.username)


@router.delete("/{task_id}", response_model=None, dependencies=[allow(Role.operator)], responses=NOT_OURS)
async def delete_scheduled_task(task_id: int, svc: Svc) -> None:
    """Delete the task's rule and its occurrences not run yet (answers `null`)."""
    await svc.scheduled_tasks.delete(task_id)
