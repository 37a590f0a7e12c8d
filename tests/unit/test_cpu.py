"""The CPU budget: counted per request on the thread's clock, checked where loops run long."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.domain import cpu
from task_scheduler.domain.cpu import CpuBudget, CpuSpent, budgeted
from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import parse_schedule

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


class Ticks:
    """A thread clock that advances ``step`` seconds at each reading."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.now += self.step
        self.readings += 1
        return self.now


def test_a_budget_stops_the_work_once_more_than_its_seconds_are_spent():
    budget = CpuBudget(1.0, Ticks(0.3))
    budget.start()
    for _ in range(3):
        budget.check()  # 0.3, 0.6, 0.9
    with pytest.raises(CpuSpent, match="more than 1 s of CPU") as raised:
        budget.check()
    assert raised.value.budget.spent == pytest.approx(1.2)


def test_time_another_budget_held_the_thread_is_not_counted():
    """The event loop serves another request while one waits: its CPU is its own."""
    mine, theirs = CpuBudget(1.0, Ticks(0.1)), CpuBudget(10.0, Ticks(0.1))
    mine.start()
    mine.check()
    theirs.start()
    theirs.check()
    mine.check()  # took the thread back: nothing counted for the time between
    mine.check()
    assert mine.spent == pytest.approx(0.2)


def test_shared_work_is_not_counted_against_the_budget_that_runs_it():
    """A listing's index of every rule is built by the request that first needs it."""
    clock = Ticks(0.1)
    with budgeted(CpuBudget(1.0, clock)) as budget:
        cpu.check()
        with cpu.shared():
            for _ in range(30):
                cpu.check()  # not this budget's: no reading, nothing counted
            clock.now += 10.0
        assert clock.readings == 3  # start, check, the restart after the shared block
        cpu.check()
    assert budget.spent == pytest.approx(0.2)


class ThreadClocks:
    """A CPU clock per thread, as the real one: each starts elsewhere and steps 0.1 a reading."""

    def __init__(self) -> None:
        self.now: dict[int, float] = {}

    def __call__(self) -> float:
        ident = threading.get_ident()
        self.now[ident] = self.now.get(ident, 1000.0 * len(self.now)) + 0.1
        return self.now[ident]


def test_a_budget_counts_each_thread_on_its_own_clock():
    """A request's computation may move to a worker thread and back."""
    budget = CpuBudget(1.0, ThreadClocks())
    budget.start()
    budget.check()  # 0.1 here
    worker = threading.Thread(target=lambda: (budget.check(), budget.check()))
    worker.start()  # 0.1 there: its first reading only starts the count
    worker.join()
    budget.check()  # 0.1 here again
    assert budget.spent == pytest.approx(0.3)


def test_checks_outside_a_budget_or_after_release_do_nothing():
    clock = Ticks(5.0)
    cpu.check()  # no budget: the dispatcher's and the expander's case
    with budgeted(CpuBudget(1.0, clock)):
        cpu.release()  # a change was committed
        cpu.check()
    assert clock.readings == 1  # only the start
    with budgeted(CpuBudget(1.0, clock)), pytest.raises(CpuSpent):
        cpu.check()
    cpu.check()  # the block's budget is gone with it


# Mondays 29 February, once every 28 years or so, at
# four hours of the day: four searches, each checked, and 20 occurrences take 140 years.
RARE = {
    "kind": "rrule",
    "rrule": "\n".join(
        f"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR={hour}" for hour in range(0, 24, 6)
    ),
    "start": "2026-01-05T00:00:00Z",
}
EVERY_SECOND = {"kind": "interval", "every": 1, "unit": "seconds", "start": "2026-01-05T00:00:00Z"}


@pytest.mark.parametrize("schedule", [RARE, EVERY_SECOND], ids=["rrule", "interval"])
def test_a_recurrence_stops_at_its_budget_and_runs_whole_without_one(schedule):
    recurrence = Recurrence(parse_schedule(schedule), ZoneInfo("UTC"), T0)
    assert len(recurrence.next_after(T0, 20)) == 20
    clock = Ticks(0.25)
    with budgeted(CpuBudget(5.0, clock)), pytest.raises(CpuSpent):
        Recurrence(parse_schedule(schedule), ZoneInfo("UTC"), T0).next_after(T0, 20)
    assert clock.readings == 22  # the start, then a check at each step until over
