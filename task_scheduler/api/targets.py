"""/targets: named connections tasks go through. Secrets are write-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, Field

from task_scheduler.api.deps import Services, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.targets import TargetConfig
from task_scheduler.services.targets import TargetSpec, TargetView

router = APIRouter(prefix="/targets", tags=["targets"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]


class DeletedTargets(BaseModel):
    deleted: int = Field(description="How many targets were deleted.")
    names: list[str]


@router.get("", response_model=list[TargetView], dependencies=[allow(Role.viewer)])
async def list_targets(
    svc: Svc, unused: Annotated[bool, Query(description="Only the targets no rule names.")] = False
) -> list[TargetView]:
    """Targets from the configuration (read-only) and those made here."""
    return await svc.targets.list(unused=unused)


@router.delete("", response_model=DeletedTargets, dependencies=[allow(Role.admin)])
async def delete_unused_targets(
    svc: Svc,
    unused: Annotated[bool, Query(description="Must be true: only targets no rule names are deleted.")],
) -> DeletedTargets:
    """Delete every target made over the API that no rule names, in one transaction;
    configured targets stay."""
    if not unused:
        raise Invalid.at(("query", "unused"), "only unused targets can be deleted in bulk: pass unused=true")
    names = await svc.targets.delete_unused()
    return DeletedTargets(deleted=len(names), names=names)


@router.post(
    "",
    status_code=201,
    response_model=TargetView,
    dependencies=[allow(Role.admin)],
    responses={**Problem.BODY, **Problem.CONFLICT},
)
async def create_target(spec: TargetSpec, svc: Svc) -> TargetView:
    """Make a target. A URL whose host is an address outside `outbound_allowlist`, or is no
    host at all, is a 422 naming the field; a name is checked on each connection."""
    return await svc.targets.create(spec)


@router.get(
    "/{name}", response_model=TargetView, dependencies=[allow(Role.viewer)], responses=Problem.NOT_FOUND
)
async def get_target(name: str, svc: Svc) -> TargetView:
    return await svc.targets.get(name)


@router.put(
    "/{name}",
    response_model=TargetView,
    dependencies=[allow(Role.admin)],
    responses={**Problem.BODY, **Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def replace_target(name: str, config: Annotated[TargetConfig, Body()], svc: Svc) -> TargetView:
    """Replace the connection; rules that use the target send through the new one from now on."""
    return await svc.targets.replace(name, config)


@router.delete(
    "/{name}",
    status_code=204,
    dependencies=[allow(Role.admin)],
    responses={**Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def delete_target(name: str, svc: Svc) -> Response:
    """Delete a target no rule uses (409 otherwise)."""
    await svc.targets.delete(name)
    return Response(status_code=204)
