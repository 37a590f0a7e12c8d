"""Who may call a route: declare ``dependencies=[allow(Role.operator)]`` where it is declared.

The bearer token comes from the ``Authorization`` header, or for the ``/events``
websocket (browsers cannot set headers there) also from ``?token=`` or its first message
(see ``api.events``).  A refused websocket is closed with 1008 (policy violation).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import Depends, WebSocketException
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from task_scheduler.domain.auth import Principal, Role
from task_scheduler.domain.errors import Forbidden, Unauthenticated

CLOSE_POLICY_VIOLATION = 1008


class BearerToken(SecurityBase):
    """Reads the token; listed in OpenAPI as the ``bearer`` scheme of every guarded route."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            bearerFormat="JWT",
            description="A token from POST /auth/login, or an RS256 token from the site's identity provider.",
        )
        self.scheme_name = "bearer"

    async def __call__(self, connection: HTTPConnection) -> str | None:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        if connection.scope["type"] == "websocket":
            return connection.query_params.get("token") or None
        return None


bearer_token = BearerToken()


async def current_principal(
    connection: HTTPConnection, token: Annotated[str | None, Depends(bearer_token)]
) -> Principal:
    """The caller; FastAPI runs this once per request however many routes' checks use it."""
    try:
        return await connection.app.state.services.auth.authenticate(token)
    except (Unauthenticated, Forbidden) as exc:
        if connection.scope["type"] == "websocket":
            raise WebSocketException(code=CLOSE_POLICY_VIOLATION, reason=str(exc)[:120]) from None
        raise


Caller = Annotated[Principal, Depends(current_principal)]


@functools.cache
def allow(role: Role) -> Any:
    """A route dependency admitting ``role`` and the roles above it (401 without a valid
    token, 403 with too low a role)."""

    async def check(connection: HTTPConnection, principal: Caller) -> Principal:
        return _require(connection, principal, role)

    check.__name__ = f"allow_{role.value}"
    return Depends(check)


def _require(connection: HTTPConnection, principal: Principal, role: Role) -> Principal:
    if not principal.role.allows(role):
        message = f"needs the {role.value} role; {principal.username!r} is a {principal.role.value}"
        if connection.scope["type"] == "websocket":
            raise WebSocketException(code=CLOSE_POLICY_VIOLATION, reason=message[:120])
        raise Forbidden(message)
    return principal


async def admit(connection: HTTPConnection, token: str | None, role: Role) -> Principal:
    """What ``allow(role)`` checks, for a token a route reads itself (a websocket's first message)."""
    return _require(connection, await current_principal(connection, token), role)
