"""/rules: create, list, read, replace, delete, enable/disable and preview rules."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, Field

from task_scheduler.api.deps import CategoryQuery, KindQuery, Offset, Services, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import Caller, allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.rules import NewRule, ReplacedRule, Rule, RuleSpec
from task_scheduler.services.occurrences import TaskView
from task_scheduler.services.rules import Occurrence
from task_scheduler.services.runs import RuleStatus

router = APIRouter(prefix="/rules", tags=["rules"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]
PreviewCount = Annotated[int, Query(ge=1, le=1000, description="How many occurrences to return.")]


class RulePage(BaseModel):
    items: list[Rule]
    total: int
    limit: int
    offset: int


@router.post(
    "",
    status_code=201,
    response_model=Rule,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **Problem.CONFLICT},
)
async def create_rule(spec: NewRule, svc: Svc, caller: Caller) -> Rule:
    """Create a rule; its occurrences up to the horizon are stored at once (and one more, due
    now, with `run_now`). A URL of the task whose host is an address outside
    `outbound_allowlist`, or is no host at all, is a 422 naming the field."""
    return await svc.rules.create(spec, by=caller.username)


MAX_BATCH = 100


@router.post(
    "/batch",
    status_code=201,
    response_model=list[Rule],
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **Problem.CONFLICT},
)
async def create_rules(
    specs: Annotated[list[NewRule], Body(min_length=1, max_length=MAX_BATCH)], svc: Svc, caller: Caller
) -> list[Rule]:
    """Create up to 100 rules at once, all or none (one transaction); a 422 names each bad
    rule by its index in the list, a 409 a name already taken."""
    return await svc.rules.create_many(specs, by=caller.username)


@router.get("", response_model=RulePage, dependencies=[allow(Role.viewer)])
async def list_rules(
    svc: Svc,
    enabled: bool | None = None,
    category: CategoryQuery = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Case-insensitive substring of the name.")
    ] = None,
    kind: KindQuery = None,
    target: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="Name of the rule's own target (task.target); a copy's source does not count.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> RulePage:
    items, total = await svc.rules.list(
        enabled=enabled, category=category, name=name, kind=kind, target=target, limit=limit, offset=offset
    )
    return RulePage(items=items, total=total, limit=limit, offset=offset)


class RulesDeleted(BaseModel):
    deleted: int = Field(description="How many rules were deleted.")
    tasks_deleted: int = Field(description="How many of their occurrences not run yet went with them.")


@router.delete("", response_model=RulesDeleted, dependencies=[allow(Role.admin)])
async def delete_all_rules(
    svc: Svc,
    confirm: Annotated[
        Literal["delete-all-rules"],
        Query(
            description="Must be exactly delete-all-rules; anything else (or nothing) is refused with 422."
        ),
    ],
) -> RulesDeleted:
    """Delete every rule, each as DELETE /rules/{id} does (its occurrences not run yet go,
    tasks already run stay as history), in one transaction. One rule.deleted event, on no
    channel, reports it (data: action "delete all" and the count), not one per rule."""
    rules, tasks = await svc.rules.delete_all()
    return RulesDeleted(deleted=rules, tasks_deleted=tasks)


@router.post(
    "/preview", response_model=list[Occurrence], dependencies=[allow(Role.operator)], responses=Problem.BODY
)
async def preview_unsaved_rule(spec: RuleSpec, svc: Svc, count: PreviewCount = 10) -> list[Occurrence]:
    """Next occurrences of an unsaved rule: from its start, or from now once the start has passed."""
    return await svc.rules.preview(spec, count)


@router.get(
    "/{rule_id:int}", response_model=Rule, dependencies=[allow(Role.viewer)], responses=Problem.NOT_FOUND
)
async def get_rule(rule_id: int, svc: Svc) -> Rule:
    return await svc.rules.get(rule_id)


@router.put(
    "/{rule_id:int}",
    response_model=ReplacedRule,
    dependencies=[allow(Role.operator)],
    responses={**Problem.BODY, **Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def replace_rule(rule_id: int, spec: RuleSpec, svc: Svc, caller: Caller) -> ReplacedRule:
    """Edit the series: future untouched occurrences are regenerated. A skipped, disabled,
    moved or re-worded occurrence keeps its day: it moves to the new series' occurrence on
    the same local date and slot; one whose day or slot is gone is dropped and listed in
    `dropped_exceptions`."""
    return await svc.rules.replace(rule_id, spec, by=caller.username)


@router.delete(
    "/{rule_id:int}", status_code=204, dependencies=[allow(Role.operator)], responses=Problem.NOT_FOUND
)
async def delete_rule(rule_id: int, svc: Svc) -> Response:
    """Delete the rule and its occurrences not yet run; tasks already run stay as history."""
    await svc.rules.delete(rule_id)
    return Response(status_code=204)


@router.post(
    "/{rule_id:int}/enable",
    response_model=Rule,
    dependencies=[allow(Role.operator)],
    responses=Problem.NOT_FOUND,
)
async def enable_rule(rule_id: int, svc: Svc, caller: Caller) -> Rule:
    """Resume the rule: occurrences from now on are scheduled again."""
    return await svc.rules.set_enabled(rule_id, True, by=caller.username)


@router.post(
    "/{rule_id:int}/disable",
    response_model=Rule,
    dependencies=[allow(Role.operator)],
    responses=Problem.NOT_FOUND,
)
async def disable_rule(rule_id: int, svc: Svc, caller: Caller) -> Rule:
    """Pause the rule: its future occurrences are dropped (individually edited ones are kept)."""
    return await svc.rules.set_enabled(rule_id, False, by=caller.username)


@router.get(
    "/{rule_id:int}/preview",
    response_model=list[Occurrence],
    dependencies=[allow(Role.viewer)],
    responses=Problem.NOT_FOUND,
)
async def preview_rule(rule_id: int, svc: Svc, count: PreviewCount = 10) -> list[Occurrence]:
    """The rule's next occurrences: from its start, or from now once the start has passed."""
    return await svc.rules.preview_stored(rule_id, count)


@router.get(
    "/{rule_id:int}/status",
    response_model=RuleStatus,
    dependencies=[allow(Role.viewer)],
    responses=Problem.NOT_FOUND,
)
async def rule_status(rule_id: int, svc: Svc) -> RuleStatus:
    """The latest run (time, outcome, error, fleet answer, duration) and the failure count."""
    return await svc.runs.rule_status(rule_id)


@router.post(
    "/{rule_id:int}/reset-attempts",
    response_model=Rule,
    dependencies=[allow(Role.operator)],
    responses=Problem.NOT_FOUND,
)
async def reset_attempts(rule_id: int, svc: Svc, caller: Caller) -> Rule:
    """Resume a rule that paused itself after too many failed occurrences in a row."""
    return await svc.rules.reset_attempts(rule_id, by=caller.username)


@router.post(
    "/{rule_id:int}/run",
    status_code=202,
    response_model=TaskView,
    dependencies=[allow(Role.operator)],
    responses={**Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def run_rule_now(rule_id: int, svc: Svc) -> TaskView:
    """Dispatch an extra occurrence of the rule now; follow it at /tasks/{id} and its runs."""
    return await svc.rules.run_now(rule_id)
