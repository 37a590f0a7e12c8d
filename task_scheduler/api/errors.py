"""Map errors to answers a client can act on: 401, 403, 404, 409, 422 with the field (or
the CPU limit a request reached), and 429/503 with Retry-After (503 also while the
database cannot serve)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from task_scheduler.domain.cpu import CpuSpent
from task_scheduler.domain.errors import (
    Busy,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from task_scheduler.domain.scheduled_tasks import ScheduleRejected
from task_scheduler.storage.faults import DRIVER_ERRORS, unavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""What a 503 asks the client to wait: about the period of a load balancer's readiness probe."""


class Problem:
    """Documented error shapes for OpenAPI."""

    UNAUTHENTICATED = {
        401: {
            "description": "No valid bearer token (missing, malformed, expired, or its user disabled)",
            "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
            "content": {"application/json": {"example": {"detail": "a bearer token is required"}}},
        }
    }
    AUTH = {
        **UNAUTHENTICATED,
        403: {
            "description": "The caller's role does not allow this",
            "content": {"application/json": {"example": {"detail": "needs the operator role"}}},
        },
    }
    """What every guarded route may answer when authentication is on."""

    NOT_FOUND = {
        404: {
            "description": "Unknown id",
            "content": {"application/json": {"example": {"detail": "rule 7 not found"}}},
        }
    }
    CONFLICT = {
        409: {
            "description": "Conflicts with the stored state",
            "content": {"application/json": {"example": {"detail": "a rule named 'lobby' already exists"}}},
        }
    }
    THROTTLED = {
        429: {
            "description": "Too many failed logins for this name or from this address",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"example": {"detail": "too many failed logins"}}},
        },
        503: {
            "description": "Too many password checks at once",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
        },
    }
    BODY = {
        400: {"description": "The body is not UTF-8 text"},
        413: {"description": "The body is longer than the service's max_body_bytes"},
    }
    """What any route that reads a JSON body may answer before looking at it."""
    UNAVAILABLE = {
        503: {
            "description": "The database is unreachable, read-only, full or busy; retry after Retry-After",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"example": {"detail": "the database is full; retry later"}}},
        }
    }
    """What every route that uses the database may answer while the database cannot serve."""


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette names the methods of the first route with this path only; a path
            # served by several routes (GET, PUT and DELETE /rules/{id}) allows them all.
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed(request))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _unreadable(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Field and reason only: echoing the input could send a target's secrets back.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        return JSONResponse(
            status_code=401, content={"detail": str(exc)}, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(TooManyAttempts)
    async def _throttled(_: Request, exc: TooManyAttempts) -> JSONResponse:
        return JSONResponse(
            status_code=503 if isinstance(exc, Busy) else 429,
            content={"detail": str(exc)},
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        detail = [
            {
                "loc": list(loc) if loc and loc[0] in ("query", "path") else ["body", *loc],
                "msg": msg,
                "type": "value_error",
            }
            for loc, msg in exc.problems
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(CpuSpent)
    async def _cpu_spent(request: Request, exc: CpuSpent) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path_format", None) or "unmatched"
        logger.warning(
            "%s %s: stopped after %.2f s of CPU (request_cpu_s %g)",
            request.method,
            request.url.path,
            exc.budget.spent,
            exc.budget.seconds,
        )
        request.app.state.services.metrics.cpu_spent.labels(method=request.method, route=route).inc()
        detail = (
            f"this request needs more than request_cpu_s ({exc.budget.seconds:g} s) of CPU; narrow it:"
            " a shorter window (start, end), a smaller count, limit or offset, fewer rules at once,"
            " or a schedule whose occurrences are not decades apart"
        )
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ScheduleRejected)
    async def _rejected(_: Request, exc: ScheduleRejected) -> JSONResponse:
        # The RMF api-server's shape and words: its clients may show the text as it is.
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # Only the reason in a few words: a driver's message may name hosts, users or SQL.
        reason = unavailable(exc)
        if reason is None:
            raise exc  # not an outage: a bug, answered 500 and logged as one
        logger.warning(
            "%s %s: database %s (%s)", request.method, request.url.path, reason, type(exc).__name__
        )
        return JSONResponse(
            status_code=503,
            content={"detail": f"the database is {reason}; retry later"},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for error in DRIVER_ERRORS:
        app.add_exception_handler(error, _database_down)


def _allowed(request: Request) -> list[str]:
    """The methods the OpenAPI documents for the request's path; as in routing, a path named
    outright (/rules/batch) goes before a template (/rules/{rule_id})."""
    segments = request.url.path.rstrip("/").split("/")
    best, methods = -1, set()
    for template, operations in request.app.openapi()["paths"].items():
        parts = template.rstrip("/").split("/")
        if len(parts) != len(segments):
            continue
        named = [part == segment for part, segment in zip(parts, segments, strict=True)]
        if not all(same or part.startswith("{") for same, part in zip(named, parts, strict=True)):
            continue
        if sum(named) > best:
            best, methods = sum(named), set()
        if sum(named) == best:
            methods |= {method.upper() for method in operations}
    return sorted(methods)
