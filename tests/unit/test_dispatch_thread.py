"""Events from the dispatcher's thread reach the API's loop in order, a burst in one wake-up."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from task_scheduler.events import Event, EventType
from task_scheduler.services.dispatch_thread import on_loop


class RecordingLoop:
    """Stands for the API's event loop: keeps what it is asked to call, runs it when told."""

    def __init__(self) -> None:
        self.wakeups: list[tuple[Any, tuple[Any, ...]]] = []

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.wakeups.append((callback, args))

    def run_once(self) -> None:
        wakeups, self.wakeups = self.wakeups, []
        for callback, args in wakeups:
            callback(*args)


def events(count: int, start: int = 0) -> list[Event]:
    at = datetime(2026, 12, 6, tzinfo=timezone.utc)
    return [Event(type=EventType.run_finished, at=at, task_id=f"t{i}") for i in range(start, start + count)]


def from_another_thread(publish: Any, burst: list[Event]) -> None:
    sender = threading.Thread(target=lambda: [publish(event) for event in burst])
    sender.start()
    sender.join()


def test_a_burst_from_another_thread_arrives_in_order_in_one_wakeup() -> None:
    loop, heard = RecordingLoop(), []
    publish = on_loop(loop, heard.append)  # type: ignore[arg-type]
    first = events(50)
    from_another_thread(publish, first)
    assert len(loop.wakeups) == 1 and heard == []
    loop.run_once()
    assert heard == first
    # Once delivered, the next event wakes the loop again.
    second = events(3, start=50)
    from_another_thread(publish, second)
    assert len(loop.wakeups) == 1
    loop.run_once()
    assert heard == first + second


def test_an_event_on_the_loops_own_thread_is_delivered_at_once() -> None:
    loop, heard = RecordingLoop(), []
    publish = on_loop(loop, heard.append)  # type: ignore[arg-type]
    [event] = events(1)
    publish(event)
    assert heard == [event] and loop.wakeups == []
