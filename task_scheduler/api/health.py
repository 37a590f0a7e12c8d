"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from task_scheduler.api.deps import Services, services

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or schema not up to date"}})
async def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """Ready when the database answers and every shipped migration is applied."""
    reachable, pending = await svc.database.readiness()
    ready = reachable and not pending
    body = {
        "status": "ready" if ready else "not ready",
        "replica": svc.dispatcher.replica_id,
        "dispatching": svc.dispatching,
        "database": reachable,
        "pending_migrations": pending,
    }
    return JSONResponse(status_code=200 if ready else 503, content=body)
