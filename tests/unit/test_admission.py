"""The admission limit: a few requests at a time, in order; health checks never wait."""

from __future__ import annotations

import asyncio

from task_scheduler.api.admission import AdmissionLimit


class Slow:
    """An ASGI app whose requests finish when released, counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.order: list[str] = []
        self.release = asyncio.Event()
        self.moved = asyncio.Condition()

    async def __call__(self, scope, receive, send) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.order.append(scope["path"])
        async with self.moved:
            self.moved.notify_all()
        if scope["path"] != "/healthz":
            await self.release.wait()
        self.running -= 1


async def started(inner: Slow, count: int) -> None:
    """Until ``count`` requests are running (a bounded wait, not a guess at loop turns)."""
    async with inner.moved:
        await asyncio.wait_for(inner.moved.wait_for(lambda: inner.running >= count), 1)


async def test_at_most_limit_requests_run_at_once_and_the_rest_go_in_order():
    inner = Slow()
    app = AdmissionLimit(inner, limit=2, cpu_s=1.0)
    calls = [asyncio.create_task(app({"type": "http", "path": f"/r{i}"}, None, None)) for i in range(5)]
    await started(inner, 2)
    for _ in range(10):
        await asyncio.sleep(0)  # the others had every chance to start, and did not
    assert inner.running == 2 and inner.order == ["/r0", "/r1"]

    # Not queued behind them: it finishes while they still hold both slots.
    await asyncio.wait_for(app({"type": "http", "path": "/healthz"}, None, None), 1)
    assert inner.order[-1] == "/healthz"

    inner.release.set()
    await asyncio.gather(*calls)
    assert inner.most == 3  # two admitted, and the health check beside them
    assert [path for path in inner.order if path != "/healthz"] == [f"/r{i}" for i in range(5)]


async def test_websockets_and_lifespan_are_not_counted():
    inner = Slow()
    app = AdmissionLimit(inner, limit=1, cpu_s=1.0)
    socket = asyncio.create_task(app({"type": "websocket", "path": "/events"}, None, None))
    request = asyncio.create_task(app({"type": "http", "path": "/rules"}, None, None))
    await started(inner, 2)  # the websocket holds no slot: the request got in beside it
    inner.release.set()
    await asyncio.gather(socket, request)
