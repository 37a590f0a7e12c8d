"""/auth: log in for a token, see who you are, and (admins) manage the built-in users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from task_scheduler.api.deps import Services, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import Caller, allow
from task_scheduler.domain.auth import Role
from task_scheduler.services.auth import Credentials, Me, NewUser, Token, UserPatch, UserView

router = APIRouter(prefix="/auth", tags=["auth"])
Svc = Annotated[Services, Depends(services)]

_OFF = {
    409: {
        "description": "Authentication is switched off (auth_enabled is False): no token is needed",
        "content": {"application/json": {"example": {"detail": "authentication is switched off"}}},
    }
}


@router.post(
    "/login",
    response_model=Token,
    responses={**Problem.BODY, **Problem.UNAUTHENTICATED, **Problem.THROTTLED, **_OFF},
)
async def login(credentials: Credentials, request: Request, svc: Svc) -> Token:
    """A bearer token for a built-in user, valid for ``auth_token_ttl_s``.  A wrong name and
    a wrong password get the same 401.  After ``auth_login_max_failures`` failures for a name
    (or ``auth_login_max_failures_per_address`` from an address) within
    ``auth_login_window_s``: 429 with ``Retry-After``, without checking the password."""
    address = request.client.host if request.client else "unknown"
    return await svc.auth.login(credentials, address)


@router.post(
    "/register",
    status_code=201,
    response_model=UserView,
    dependencies=[allow(Role.admin)],
    responses={**Problem.BODY, **Problem.AUTH, **Problem.CONFLICT},
)
async def register(new: NewUser, svc: Svc, caller: Caller) -> UserView:
    """Create a built-in user (admins only; the first admin comes from the configuration or
    ``task_scheduler create-admin``)."""
    return await svc.auth.register(new, by=caller.username)


@router.get("/me", response_model=Me, dependencies=[allow(Role.viewer)], responses=Problem.AUTH)
async def me(svc: Svc, caller: Caller) -> Me:
    """Who the token names and the role they act with."""
    return Me(username=caller.username, role=caller.role, source=caller.source, auth_enabled=svc.auth.enabled)


@router.get("/users", response_model=list[UserView], dependencies=[allow(Role.admin)], responses=Problem.AUTH)
async def list_users(svc: Svc) -> list[UserView]:
    """The built-in users (users of the identity provider are not stored here)."""
    return await svc.auth.list_users()


@router.patch(
    "/users/{username}",
    response_model=UserView,
    dependencies=[allow(Role.admin)],
    responses={**Problem.BODY, **Problem.AUTH, **Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def update_user(username: str, patch: UserPatch, svc: Svc, caller: Caller) -> UserView:
    """Change a user's role, enable or disable them, or set a new password.  The last
    enabled admin cannot be demoted or disabled (409)."""
    return await svc.auth.update_user(username, patch, by=caller.username)


@router.delete(
    "/users/{username}",
    status_code=204,
    dependencies=[allow(Role.admin)],
    responses={**Problem.AUTH, **Problem.NOT_FOUND, **Problem.CONFLICT},
)
async def delete_user(username: str, svc: Svc, caller: Caller) -> Response:
    """Delete a user; their tokens stop working at once.  Not the last enabled admin (409)."""
    await svc.auth.delete_user(username, by=caller.username)
    return Response(status_code=204)
