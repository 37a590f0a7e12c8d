"""Who may call what, with authentication on, on every database.

``REQUIRED`` classifies every route of the app: the test that enumerates ``app.routes``
fails for a route missing from it (or listed but gone), so each new route has to be
given a role here, and the sweep then checks that the route behaves so: no token 401,
the role just below 403, the role itself let through.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import httpx
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.domain.auth import Role
from task_scheduler.events import Event, EventType
from tests.integration.conftest import T0

OPEN = None

REQUIRED: dict[tuple[str, str], Role | None] = {
    ("GET", "/rules"): Role.viewer,
    ("POST", "/rules"): Role.operator,
    ("POST", "/rules/batch"): Role.operator,
    ("DELETE", "/rules"): Role.admin,
    ("POST", "/rules/preview"): Role.operator,
    ("GET", "/rules/{rule_id}"): Role.viewer,
    ("PUT", "/rules/{rule_id}"): Role.operator,
    ("DELETE", "/rules/{rule_id}"): Role.operator,
    ("POST", "/rules/{rule_id}/enable"): Role.operator,
    ("POST", "/rules/{rule_id}/disable"): Role.operator,
    ("GET", "/rules/{rule_id}/preview"): Role.viewer,
    ("GET", "/rules/{rule_id}/status"): Role.viewer,
    ("POST", "/rules/{rule_id}/reset-attempts"): Role.operator,
    ("POST", "/rules/{rule_id}/run"): Role.operator,
    ("GET", "/tasks"): Role.viewer,
    ("DELETE", "/tasks"): Role.admin,
    ("GET", "/tasks/{task_id}"): Role.viewer,
    ("PATCH", "/tasks/{task_id}"): Role.operator,
    ("DELETE", "/tasks/{task_id}"): Role.operator,
    ("GET", "/tasks/{task_id}/runs"): Role.viewer,
    ("POST", "/tasks/{task_id}/dispatch"): Role.operator,
    ("GET", "/runs"): Role.viewer,
    ("DELETE", "/runs"): Role.admin,
    ("GET", "/targets"): Role.viewer,
    ("POST", "/targets"): Role.admin,
    ("DELETE", "/targets"): Role.admin,
    ("POST", "/timers"): Role.operator,
    ("GET", "/timers/{timer_id}"): Role.viewer,
    ("GET", "/targets/{name}"): Role.viewer,
    ("PUT", "/targets/{name}"): Role.admin,
    ("DELETE", "/targets/{name}"): Role.admin,
    ("POST", "/scheduled_tasks"): Role.operator,
    ("GET", "/scheduled_tasks"): Role.viewer,
    ("GET", "/scheduled_tasks/{task_id}"): Role.viewer,
    ("POST", "/scheduled_tasks/{task_id}/except_date"): Role.operator,
    ("POST", "/scheduled_tasks/{task_id}/update"): Role.operator,
    ("DELETE", "/scheduled_tasks/{task_id}"): Role.operator,
    ("POST", "/auth/login"): OPEN,
    ("POST", "/auth/register"): Role.admin,
    ("GET", "/auth/me"): Role.viewer,
    ("GET", "/auth/users"): Role.admin,
    ("PATCH", "/auth/users/{username}"): Role.admin,
    ("DELETE", "/auth/users/{username}"): Role.admin,
    ("WEBSOCKET", "/events"): Role.viewer,
    ("GET", "/metrics"): OPEN,  # Prometheus scrapers carry no token
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("POST", "/auth/feed-token"): Role.viewer,
    ("POST", "/rules/import"): Role.operator,
    ("GET", "/calendar.ics"): Role.viewer,
    ("GET", "/"): OPEN,  # the console's page signs in by itself
    ("GET", "/console/config"): OPEN,
    ("MOUNT", "/console/static"): OPEN,  # the console's script, styles and the docs' assets
}
BELOW = {Role.operator: Role.viewer, Role.admin: Role.operator}
PARAMS = {
    "{rule_id}": "1",
    "{task_id}": "1-20260105T120000Z",
    "{name}": "nowhere",
    "{username}": "nobody",
    "{timer_id}": "timer-0",
}


def declared_routes(app) -> set[tuple[str, str]]:
    found = set()
    for context in iter_route_contexts(app.routes):
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", context.path)  # /rules/{rule_id:int} as documented
        if isinstance(context.original_route, APIWebSocketRoute):
            found.add(("WEBSOCKET", path))
        elif isinstance(context.original_route, Mount):
            found.add(("MOUNT", context.path))
        else:
            found |= {(method, path) for method in context.methods - {"HEAD"}}
    return found


def test_every_route_is_classified():
    app = get_app(build_settings({}, environ={}))
    routes = declared_routes(app)
    assert routes - REQUIRED.keys() == set(), "give these routes a role in REQUIRED"
    assert REQUIRED.keys() - routes == set(), "these routes are gone: remove them from REQUIRED"


async def test_each_route_answers_401_without_a_token_403_below_its_role_and_serves_its_role(secured):
    for (method, template), role in REQUIRED.items():
        if method == "WEBSOCKET":
            continue  # test_the_event_stream_needs_a_viewer_token
        path = template
        for placeholder, value in PARAMS.items():
            path = path.replace(placeholder, value)
        if method == "MOUNT":
            method, path = "GET", f"{template}/console.js"
        body = {} if method in ("POST", "PUT", "PATCH") else None

        async def call(headers: dict[str, str]) -> httpx.Response:
            return await secured.http.request(method, path, json=body, headers=headers)  # noqa: B023

        bare = await call({})
        if role is OPEN:
            assert bare.status_code not in (401, 403), (method, template, bare.status_code)
            continue
        assert bare.status_code == 401, (method, template, bare.status_code)
        assert bare.headers["www-authenticate"] == "Bearer" and bare.json()["detail"]
        if role in BELOW:
            refused = await call(secured.auth(BELOW[role]))
            assert refused.status_code == 403, (method, template, refused.status_code)
            assert f"needs the {role.value} role" in refused.json()["detail"]
        allowed = await call(secured.auth(role))
        assert allowed.status_code not in (401, 403), (method, template, allowed.status_code, allowed.text)


async def handshake(
    app, query: str = "", headers: dict[str, str] | None = None, *, first: str | None = None
) -> list[dict]:
    """Open ``/events`` on the app in this loop and return what the server sends: its
    answer to the handshake (accept or close), and once accepted, after the client's
    ``first`` message (if any) and one event published, the next message (a close or the
    event). Then the client leaves."""
    sent: asyncio.Queue[dict] = asyncio.Queue()
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/events",
        "raw_path": b"/events",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "server": ("scheduler", 80),
        "client": ("127.0.0.1", 50000),
        "subprotocols": [],
    }
    serving = asyncio.create_task(app(scope, incoming.get, sent.put))
    answers = [await asyncio.wait_for(sent.get(), 5)]
    if answers[0]["type"] == "websocket.accept" and first is not None:
        incoming.put_nowait({"type": "websocket.receive", "text": first})
        # The subscription began before the accept: the event waits for the verdict.
        app.state.services.events.publish(
            Event(type=EventType.rule_created, at=T0, rule_id=1, task_id=None, channel=None, data={})
        )
        answers.append(await asyncio.wait_for(sent.get(), 5))
    incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(serving, 5)
    return answers


async def test_the_event_stream_needs_a_viewer_token_in_the_header_the_query_or_the_first_message(secured):
    expired = secured.external("grace", exp=int((T0 - timedelta(hours=1)).timestamp()))
    refused = await handshake(secured.app, headers=expired)
    assert refused[0]["type"] == "websocket.close" and refused[0]["code"] == 1008
    assert "expired" in refused[0]["reason"]
    assert (await handshake(secured.app, "token=garbage"))[0]["code"] == 1008

    viewer = secured.tokens[Role.viewer]
    assert (await handshake(secured.app, f"token={viewer}"))[0]["type"] == "websocket.accept"
    assert (await handshake(secured.app, headers=secured.auth(Role.viewer)))[0]["type"] == "websocket.accept"

    admitted = await handshake(secured.app, first=json.dumps({"type": "auth", "token": viewer}))
    assert [a["type"] for a in admitted] == ["websocket.accept", "websocket.send"]
    assert json.loads(admitted[1]["text"])["type"] == "rule.created"
    for first in ("hello", json.dumps({"type": "auth"}), json.dumps({"token": viewer})):
        closed = await handshake(secured.app, first=first)
        assert closed[1]["type"] == "websocket.close" and closed[1]["code"] == 1008
        assert "bearer token is required" in closed[1]["reason"]
    expired_token = expired["Authorization"].removeprefix("Bearer ")
    closed = await handshake(secured.app, first=json.dumps({"type": "auth", "token": expired_token}))
    assert closed[1]["code"] == 1008 and "expired" in closed[1]["reason"]
