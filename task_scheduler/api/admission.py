"""Admit a few API requests at a time, so that each is served promptly under API load.

With every request in progress at once, a burst of API calls fills the loop's queue of
ready callbacks, and every request waits behind all of them (the dispatcher has a loop of
its own, see ``services.dispatch_thread``). Serving at most ``api_concurrency`` requests
at a time (the rest wait their turn, in order, before any work is done for them) keeps
that queue short. The API's throughput, bound by the same CPU, stays the same; health
checks and metrics are never held back. Nor are logins, which have bounds of their own
(``auth_login_*``): most of a login is a password hash in a thread, and logins waiting for
one must not keep every other request waiting behind them.

Each admitted request is also served within ``request_cpu_s`` of CPU (``domain.cpu``): a
request that asks for more (a listing over centuries of a rule that fires every second, a
preview of a rule that fires once in decades) stops with a 422 instead of holding the CPU,
and the interpreter lock the dispatcher's thread needs, for as long as it asks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from task_scheduler.domain.cpu import CpuBudget, budgeted

UNQUEUED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/auth/login"})


class AdmissionLimit:
    """ASGI middleware: at most ``limit`` HTTP requests are served at once, each within
    ``cpu_s`` seconds of CPU."""

    def __init__(self, app: Any, limit: int, cpu_s: float) -> None:
        self.app = app
        self._slots = asyncio.Semaphore(limit)
        self._cpu_s = cpu_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNQUEUED_PATHS:
            await self.app(scope, receive, send)
            return
        async with self._slots:
            with budgeted(CpuBudget(self._cpu_s)):
                await self.app(scope, receive, send)
