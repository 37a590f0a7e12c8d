"""/tasks: occurrences of rules for any window; edit or skip one occurrence."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from task_scheduler.api.deps import (
    CategoryQuery,
    KindQuery,
    RuleIdQuery,
    Services,
    UtcDatetime,
    services,
)
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.listing import Cursor, TaskQuery, decode_cursor, differing_filters, encode_cursor
from task_scheduler.domain.tasks import TaskPatch, TaskStatus
from task_scheduler.services.occurrences import TaskView
from task_scheduler.services.runs import RunView

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]
DEFAULT_WINDOW = timedelta(days=7)
MAX_IDS = 1000  # ids one bulk delete may name


class TaskPage(BaseModel):
    items: list[TaskView]
    next: str | None = Field(
        description="Cursor for the next page (pass it as `cursor`); null on the last page."
    )
    total: int | None = Field(
        description="Occurrences in the whole window, given when known at no extra cost: on a first"
        " page that holds the whole window, or when the window has no computed occurrences (only"
        " stored tasks). Otherwise null; page with `next` until it is null."
    )
    limit: int
    offset: int
    start: datetime
    end: datetime


@router.get("", response_model=TaskPage, dependencies=[allow(Role.viewer)])
async def list_tasks(
    svc: Svc,
    start: Annotated[UtcDatetime | None, Query(description="Window start (inclusive); default now.")] = None,
    end: Annotated[
        UtcDatetime | None,
        Query(description="Window end (exclusive); default start + 7 days. Any length is accepted."),
    ] = None,
    rule_id: RuleIdQuery = None,
    status: TaskStatus | None = None,
    category: CategoryQuery = None,
    kind: KindQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=2**31 - 1,
            description="Items to skip (after the cursor, if any); costs what it skips.",
        ),
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="The `next` of the previous page: the page after it. The window and filters"
            " come with it; any repeated must be the same.",
        ),
    ] = None,
) -> TaskPage:
    """Occurrences scheduled in the window, stored and, past the stored horizon, computed, by time
    then id. A page costs about its own size whatever the window, the rules' frequency or how deep
    it is: it merges the stored tasks with each rule's occurrences as they are needed."""
    given = {
        "start": start,
        "end": end,
        "rule_id": rule_id,
        "status": status.value if status else None,
        "category": category,
        "kind": kind,
    }
    after = None
    if cursor is not None:
        try:
            made = decode_cursor(cursor)
        except ValueError as exc:
            raise Invalid.at(("query", "cursor"), str(exc)) from None
        differing = differing_filters(made.query, given)
        if differing:
            names = ", ".join(differing)
            raise Invalid.at(("query", differing[0]), f"differs from the cursor's ({names}); leave it out")
        query, after = made.query, made.after
    else:
        query = _query(svc, given)
    page = await svc.tasks.list(query, after, offset=offset, limit=limit)
    following = encode_cursor(Cursor(query, page.next)) if page.next is not None else None
    return TaskPage(
        items=page.items,
        next=following,
        total=page.total,
        limit=limit,
        offset=offset,
        start=query.start,
        end=query.end,
    )


def _query(svc: Services, given: dict[str, Any]) -> TaskQuery:
    start = given["start"] or svc.clock.now()
    try:
        end = given["end"] or start + DEFAULT_WINDOW
    except OverflowError:
        raise Invalid.at(("query", "start"), "too far in the future") from None
    if end <= start:
        raise Invalid.at(("query", "end"), "end must be after start")
    return TaskQuery(**{**given, "start": start, "end": end})


class TasksDeleted(BaseModel):
    """What a bulk delete did; deleted + skipped + in_flight is every task it matched."""

    deleted: int = Field(
        description="Tasks removed: history (dispatched, failed, missed, skipped, cancelled; their runs"
        " stay, see DELETE /runs), ad-hoc tasks, a deleted rule's, and pending occurrences already past."
    )
    skipped: int = Field(
        description="Occurrences their rule would otherwise bring back (pending ones, stored or only"
        " computed so far, and any sent ahead of their time): kept with status skipped and status_reason"
        " deleted, as DELETE /tasks/{id} does; includes ones that were skipped already."
    )
    in_flight: int = Field(
        description="Tasks being dispatched right now (status dispatching, lease not run out): left alone."
    )


@router.delete("", response_model=TasksDeleted, dependencies=[allow(Role.admin)])
async def delete_tasks(
    svc: Svc,
    kind: KindQuery = None,
    rule_id: RuleIdQuery = None,
    ids: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None,
        Query(
            alias="id",
            max_length=MAX_IDS,
            description=f"A task id; repeat for several (at most {MAX_IDS}). Unknown ids are passed over.",
        ),
    ] = None,
    start: Annotated[UtcDatetime | None, Query(description="Tasks scheduled at or after this.")] = None,
    end: Annotated[
        UtcDatetime | None,
        Query(
            description="Tasks scheduled before this; with it, occurrences only computed so far count too."
        ),
    ] = None,
    status: TaskStatus | None = None,
) -> TasksDeleted:
    """Delete every task that matches all the filters given, in one transaction; at least one filter
    is required (422 otherwise).  Each task goes the only way that keeps it deleted: history and
    tasks no rule would bring back are removed, occurrences a rule would bring back are kept as
    skipped, tasks being dispatched right now are left (see the answer's fields)."""
    if start and end and end <= start:
        raise Invalid.at(("query", "end"), "end must be after start")
    done = await svc.tasks.delete_many(
        kind=kind, rule_id=rule_id, ids=ids or [], start=start, end=end, status=status
    )
    return TasksDeleted(**asdict(done))


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
    """Disable/enable, move or give its own request to one occurrence, stored or not yet.
    409 once it is being dispatched, which starts up to `dispatch_claim_ahead_s` before its time."""
    return await svc.tasks.patch(task_id, patch)


@router.delete(
    "/{task_id}",
    status_code=204,
    dependencies=[allow(Role.operator)],
    responses={**Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def delete_task(task_id: str, svc: Svc) -> Response:
    """Skip one occurrence for good; it stays listed with status skipped. 409 once it is being
    dispatched, which starts up to `dispatch_claim_ahead_s` before its time."""
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
