"""Refuse, in any request, what no database can hold, before a route or a query sees it.

Every string in the path, the query and a JSON body is checked for NUL characters and lone
surrogates, and every number in the body for NaN and Infinity (see ``domain.storable``):
422 naming the parameter or the place in the body. Depth and size are checked where a
document is stored, against its own limits.
"""

from __future__ import annotations

from fastapi import Request, WebSocketException
from starlette.requests import HTTPConnection

from task_scheduler.api.security import CLOSE_POLICY_VIOLATION
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.storable import Problems, printable, problems, text_problem


async def storable_input(connection: HTTPConnection) -> None:
    found: Problems = []
    for where, pairs in (
        ("path", connection.path_params.items()),
        ("query", connection.query_params.multi_items()),
    ):
        for name, value in pairs:
            reason = text_problem(name) or (text_problem(value) if isinstance(value, str) else None)
            if reason is not None:
                found.append(((where, printable(name)), reason))
    if isinstance(connection, Request):
        # Paths in the body are shown under "body" by the error handler.
        found += problems(await _json_body(connection), max_depth=None, max_bytes=None)
    if not found:
        return
    if connection.scope["type"] == "websocket":
        (where, name), reason = found[0]
        raise WebSocketException(code=CLOSE_POLICY_VIOLATION, reason=f"{where} {name}: {reason}"[:120])
    raise Invalid(found)


async def _json_body(request: Request) -> object:
    """The request's JSON body (parsed once: the route reads the same), or None when it has none."""
    if "json" not in request.headers.get("content-type", "") or not await request.body():
        return None
    try:
        return await request.json()
    except (ValueError, RecursionError):
        return None  # the route says what is wrong with it, or does not read a body
