"""Every HTTP request gets an id (logged on each of its lines) and is counted and timed."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from task_scheduler.logs import request_id
from task_scheduler.metrics import Metrics

_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ObserveRequests:
    """ASGI middleware: ``X-Request-ID`` (the caller's, if it is short and plain, else a new
    one) set for the request's log lines and echoed in the answer; per-route counts and
    latencies into ``metrics``. The route is its template (``/rules/{rule_id}``), so labels
    stay few whatever ids are asked for."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                # path_format: the template as documented, without convertors ({rule_id:int}).
                route = getattr(scope.get("route"), "path_format", None) or "unmatched"
                self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)
            request_id.reset(token)
