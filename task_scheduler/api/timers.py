"""/timers: call a URL once, hours, minutes and seconds from now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from task_scheduler.api.deps import Services, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import allow
from task_scheduler.domain.auth import Role
from task_scheduler.services.timers import TimerSpec, TimerView

router = APIRouter(prefix="/timers", tags=["timers"], responses=Problem.AUTH)
Svc = Annotated[Services, Depends(services)]


@router.post(
    "", status_code=201, response_model=TimerView, dependencies=[allow(Role.operator)], responses=Problem.BODY
)
async def set_timer(spec: TimerSpec, svc: Svc) -> TimerView:
    """Call `url` once the time given has passed. The timer is an http task: follow it at
    /tasks/{id} and its call at /tasks/{id}/runs. A `url` whose host is an address outside
    `outbound_allowlist` is a 422."""
    return await svc.timers.create(spec)


@router.get(
    "/{timer_id}", response_model=TimerView, dependencies=[allow(Role.viewer)], responses=Problem.NOT_FOUND
)
async def get_timer(timer_id: str, svc: Svc) -> TimerView:
    """Seconds left before the call; 0 once it has expired."""
    return await svc.timers.get(timer_id)
