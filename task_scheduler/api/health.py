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


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "The database is unreachable, read-only or full, or a migration is missing",
            "content": {
                "application/json": {
                    "example": {
                        "status": "not ready",
                        "replica": "host-1234",
                        "dispatching": True,
                        "database": True,
                        "writable": False,
                        "reason": "full",
                        "pending_migrations": [],
                    }
                }
            },
        }
    },
)
async def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """Ready when the database answers, commits a small write, and has every shipped
    migration. ``reason`` says why not: unreachable, read-only, full, busy, migrations pending."""
    readiness = await svc.database.readiness()
    body = {
        "status": "ready" if readiness.ready else "not ready",
        "replica": svc.dispatcher.replica_id,
        "dispatching": svc.dispatching,
        "database": readiness.reachable,
        "writable": readiness.writable,
        "reason": readiness.reason,
        "pending_migrations": readiness.pending,
    }
    return JSONResponse(status_code=200 if readiness.ready else 503, content=body)
