"""A CPU budget for one piece of work, checked where computing may run long.

Loops whose length a caller chooses (recurrence streams, a listing's merge, the calendar
export) call :func:`check` at each step. It reads the budget of the current context
(a contextvar), so domain code stays pure and the same code runs unbudgeted where none is
set: the dispatcher's thread and the expander's passes, whose work their own batch and
horizon settings bound. The API sets one per request (``api.budget``).

Spent is counted in CPU seconds of the thread doing the work (``time.thread_time``), so a
request waiting on the database spends nothing. The API's event loop serves other requests
while one waits: the time between two checks of one budget counts against it only if no
other budget was checked (or started) on that thread in between. What another request
computes without checking (a page's serialisation) can still count against this one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar


class CpuSpent(Exception):
    """The work used up its budget; it stops here, before anything more is written."""

    def __init__(self, budget: CpuBudget) -> None:
        super().__init__(f"used more than {budget.seconds:g} s of CPU")
        self.budget = budget


class CpuBudget:
    """At most ``seconds`` of ``clock`` (the calling thread's CPU time) from start on."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.thread_time) -> None:
        self.seconds = seconds
        self.spent = 0.0
        self._clock = clock

    def start(self) -> None:
        """Count from now, on this thread."""
        _thread.held = (self, self._clock())

    def check(self) -> None:
        """Count this thread's time since its last reading, if this budget made it; CpuSpent
        once the total is over."""
        now = self._clock()
        held = getattr(_thread, "held", None)
        if held is not None and held[0] is self:
            self.spent += now - held[1]
        _thread.held = (self, now)
        if self.spent > self.seconds:
            raise CpuSpent(self)


# .held: (budget, clock reading) of the last check made on this thread; each thread's CPU
# clock is its own, so a reading is only compared with one of the same thread.
_thread = threading.local()
_current: ContextVar[CpuBudget | None] = ContextVar("cpu_budget", default=None)


def check() -> None:
    """Check the current context's budget, if it has one."""
    budget = _current.get()
    if budget is not None:
        budget.check()


@contextlib.contextmanager
def budgeted(budget: CpuBudget) -> Iterator[CpuBudget]:
    """Run the block (and what it awaits) under ``budget``, counting from now."""
    token = _current.set(budget)
    budget.start()
    try:
        yield budget
    finally:
        _current.reset(token)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Run the block outside the current budget: work that serves every request (a cache
    they all read) is not counted against the one that happens to run it."""
    budget = _current.get()
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
        if budget is not None:
            budget.start()  # count again from here


def release() -> None:
    """No more checks in this context: called once a change is committed, so that a request
    that wrote answers for what it wrote instead of failing afterwards."""
    _current.set(None)
