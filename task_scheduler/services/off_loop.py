"""Long computations of a request run in a thread, off the API's event loop.

A preview of a rule that fires once in decades computes for as long as ``request_cpu_s``
allows; on the event loop, every other request would wait that long behind it. In a
thread the loop keeps serving (the threads share the interpreter lock, handed over every
millisecond, see ``dispatch_thread.SWITCH_S``). The request's CPU budget goes along (the
context is copied) and counts that thread's CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def off_loop(compute: Callable[[], T]) -> T:
    return await asyncio.to_thread(compute)
