"""``/events`` over real sockets: uvicorn in the test's loop, a websockets client.

Each test serves a small app (just the events route and the bus on
``app.state.services``) on a free loopback port; its lifespan closes the bus on shutdown,
as the service's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from reactivex import Observable
from reactivex import operators as ops
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from task_scheduler.api import events as events_api
from task_scheduler.events import Event, EventBus, EventType
from task_scheduler.metrics import Metrics
from task_scheduler.services.auth import AuthService, AuthSettings

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
DEADLINE = 5.0


class WatchedBus(EventBus):
    """An EventBus that says when its last subscriber lets go (to await clean-up, not poll)."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = asyncio.Event()

    @property
    def stream(self) -> Observable[Event]:
        return super().stream.pipe(ops.finally_action(self._released))

    def _released(self) -> None:
        if self.subscriber_count == 0:
            self.idle.set()


class _Server(uvicorn.Server):
    """uvicorn that reports start-up on an event, stops on one, and leaves signals to pytest."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stopping.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the Date and Server headers, once
        await self._stopping.wait()  # rather than uvicorn's 0.1 s tick

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@dataclass
class Served:
    bus: WatchedBus
    server: _Server
    serving: asyncio.Task[None]
    url: str

    def connect(self, query: str = "") -> Any:
        return connect(f"{self.url}/events{query}", open_timeout=DEADLINE, close_timeout=DEADLINE)

    async def stop(self) -> None:
        self.server.stop()
        await asyncio.wait_for(asyncio.shield(self.serving), DEADLINE)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    bus = WatchedBus()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            bus.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(events_api.router)
    auth = AuthService(None, None, AuthSettings(enabled=False, secret=None, token_ttl=timedelta(hours=1)))
    app.state.services = types.SimpleNamespace(events=bus, metrics=Metrics(), auth=auth)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="events-server")
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        serving.cancel()
        raise RuntimeError("the events server did not start") from (
            serving.exception() if serving.done() and not serving.cancelled() else None
        )
    port = sock.getsockname()[1]
    handle = Served(bus=bus, server=server, serving=serving, url=f"ws://127.0.0.1:{port}")
    try:
        yield handle
    finally:
        server.stop()
        await asyncio.wait_for(serving, DEADLINE)
        sock.close()


def event(n: int, channel: str | None = "lobby") -> Event:
    return Event(
        type=EventType.task_dispatched,
        at=T0 + timedelta(seconds=n),
        rule_id=1,
        task_id=f"t{n}",
        channel=channel,
        data={"fleet_task_id": f"clean.dispatch-{n}"},
    )


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), DEADLINE)
    assert isinstance(message, str)  # a text frame
    return json.loads(message)


async def closed_with(ws: ClientConnection) -> ConnectionClosed:
    """The close the server sent, once the client has read everything before it."""
    with pytest.raises(ConnectionClosed) as caught:
        await asyncio.wait_for(ws.recv(), DEADLINE)
    return caught.value


async def test_events_arrive_as_json_in_order(served: Served) -> None:
    async with served.connect() as ws:
        for n in range(3):
            served.bus.publish(event(n, channel=None if n == 1 else "lobby"))

        received = [await receive(ws) for _ in range(3)]

    assert received == [event(n, channel=None if n == 1 else "lobby").to_json() for n in range(3)]
    assert received[0]["type"] == "task.dispatched" and received[0]["at"] == "2026-01-05T12:00:00Z"


async def test_a_channel_query_filters_the_stream(served: Served) -> None:
    async with served.connect("?channel=lobby") as lobby, served.connect() as everything:
        served.bus.publish(event(0, channel="kitchen"))
        served.bus.publish(event(1, channel=None))
        served.bus.publish(event(2, channel="lobby"))

        assert (await receive(lobby))["task_id"] == "t2"  # the first it gets: the others were filtered
        assert [(await receive(everything))["task_id"] for _ in range(3)] == ["t0", "t1", "t2"]


async def test_a_client_too_far_behind_is_closed_with_1013_and_a_reason(served: Served) -> None:
    async with served.connect() as ws, served.connect("?channel=lobby") as lobby:
        served.bus.publish(event(0))
        assert (await receive(ws))["task_id"] == "t0"
        assert (await receive(lobby))["task_id"] == "t0"

        # One burst, no await in between, so the server cannot drain: 1001 events overflow
        # the unfiltered client's buffer (1000); the lobby client gets 1000 and keeps up.
        for n in range(1, 1002):
            served.bus.publish(event(n, channel="lobby" if n <= 1000 else "kitchen"))

        closed = await closed_with(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1013
        assert "too slow" in closed.rcvd.reason
        assert [(await receive(lobby))["task_id"] for _ in range(1000)] == [f"t{n}" for n in range(1, 1001)]
        assert served.bus.subscriber_count == 1

    await asyncio.wait_for(served.bus.idle.wait(), DEADLINE)  # both subscriptions released


async def test_a_client_leaving_releases_its_subscription(served: Served) -> None:
    async with served.connect("?channel=lobby") as ws:
        served.bus.publish(event(0))
        await receive(ws)
        assert served.bus.subscriber_count == 1

    await asyncio.wait_for(served.bus.idle.wait(), DEADLINE)
    assert served.bus.subscriber_count == 0
    served.bus.publish(event(1))  # nobody left to send to: nothing breaks


async def test_closing_the_bus_closes_the_socket_after_pending_events(served: Served) -> None:
    async with served.connect() as ws:
        served.bus.publish(event(0))
        served.bus.close()

        assert (await receive(ws))["task_id"] == "t0"
        closed = await closed_with(ws)

    assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert closed.rcvd.reason == "server shutting down"
    await asyncio.wait_for(served.bus.idle.wait(), DEADLINE)


async def test_server_shutdown_closes_the_socket_and_finishes(served: Served) -> None:
    async with served.connect() as ws:
        served.bus.publish(event(0))
        assert (await receive(ws))["task_id"] == "t0"

        await served.stop()  # returns only once uvicorn has let go of every connection

        closed = await closed_with(ws)

    # uvicorn closes its sockets (1012, service restart) before the lifespan closes the bus.
    assert closed.rcvd is not None and closed.rcvd.code == 1012
    assert served.bus.closed and served.bus.subscriber_count == 0
