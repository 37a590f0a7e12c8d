"""The dispatcher on its own event loop, in its own thread, so no API request can hold it up.

An API request that computes for a while (a wide listing) holds the event loop it runs
on; a dispatcher on the same loop would wait for it, and its tasks would be late by as
much. Here the dispatcher has a loop of its own, its own database connections (Tortoise
keeps connections per context: the thread starts with an empty set and opens its own)
and its own HTTP session. Python's interpreter lock still passes between the threads:
a thread that computes is made to hand it over after ``SWITCH_S`` (Python's default is
5 ms, paid again at each wake-up of the dispatcher while the API computes).

What crosses threads: events go to the API's loop with ``call_soon_threadsafe`` (the
``/events`` stream and its subscribers live there), and wake-ups from the API come in
the same way (``Dispatcher.wake``). Metrics are thread-safe as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from tortoise import connections

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows, PyPy
    uvloop = None

from task_scheduler.events import Event
from task_scheduler.services.dispatcher import Dispatcher

logger = logging.getLogger(__name__)

SWITCH_S = 0.001
"""How long a thread may keep the interpreter lock while another waits for it."""


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on a new event loop: uvloop's where it is installed (it comes with
    uvicorn's standard extras), whose sockets and callbacks cost a fraction of asyncio's
    own for each request the dispatcher sends."""
    if uvloop is None:
        asyncio.run(main)
    else:
        uvloop.run(main)


def on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[Event], None]) -> Callable[[Event], None]:
    """``call`` made on ``loop``'s thread, in order, from whichever thread calls the result.

    Events from another thread wait in a queue that one wake-up of ``loop`` empties: a
    burst of dispatches costs the API's loop one wake-up, not one per event."""
    owner = threading.get_ident()
    waiting: deque[Event] = deque()
    lock = threading.Lock()
    woken = False

    def deliver() -> None:
        nonlocal woken
        with lock:
            events, woken = list(waiting), False
            waiting.clear()
        for event in events:
            call(event)

    def made_there(event: Event) -> None:
        nonlocal woken
        if threading.get_ident() == owner:
            call(event)
            return
        with lock:
            waiting.append(event)
            wake, woken = not woken, True
        if wake:
            loop.call_soon_threadsafe(deliver)

    return made_there


class DispatchThread:
    def __init__(self, dispatcher: Dispatcher, http: Callable[[], Any], grace_s: float) -> None:
        """``http`` makes the dispatcher's HTTP session, on its loop."""
        self._dispatcher = dispatcher
        self._http = http
        self._grace_s = grace_s
        self._thread = threading.Thread(target=self._main, name="dispatcher", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_S)
        self._thread.start()
        self._ready.wait()

    async def stop(self) -> None:
        """Let in-flight dispatches finish (up to the grace), hand back the claims, close."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        try:
            run_loop(self._serve())
        except Exception:
            logger.exception("the dispatcher thread ended on an error")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        connections._set_storage({})  # this thread's own connections, opened on first use
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        http = self._http()
        self._dispatcher.use_http(http)
        loop = asyncio.create_task(self._dispatcher.run(), name="dispatcher")
        self._ready.set()
        try:
            await self._stopping.wait()
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await self._dispatcher.stop(self._grace_s)
        except Exception:
            logger.exception("could not hand back claimed tasks; their leases will run out")
        finally:
            await http.close()
            await connections.close_all()
