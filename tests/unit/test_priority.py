"""The dispatcher goes first on the shared SQLite connection, without shutting out the API."""

from __future__ import annotations

import asyncio

import pytest

from task_scheduler.storage.priority import FIRST_IN_A_ROW, PriorityLock, serve_first


async def order_of(lock: PriorityLock, waiters: list[tuple[str, bool]]) -> list[str]:
    """Queue ``waiters`` (name, served first?) behind a holder in this order, then let the
    holder go; return the order in which they got the lock."""
    got: list[str] = []

    async def wait(name: str, first: bool) -> None:
        if first:
            serve_first()
        async with lock:
            got.append(name)

    await lock.acquire()
    jobs = []
    for name, first in waiters:
        jobs.append(asyncio.create_task(wait(name, first)))
        await asyncio.sleep(0)  # queued in this order
    lock.release()
    await asyncio.gather(*jobs)
    return got


async def test_first_waiters_pass_those_queued_before_them_each_queue_in_order() -> None:
    got = await order_of(
        PriorityLock(), [("api 1", False), ("api 2", False), ("claim", True), ("settle", True)]
    )
    assert got == ["claim", "settle", "api 1", "api 2"]


async def test_a_waiting_other_is_served_after_first_in_a_row_firsts() -> None:
    firsts = [(f"dispatch {n}", True) for n in range(FIRST_IN_A_ROW + 3)]
    got = await order_of(PriorityLock(), [("api", False), *firsts])
    assert got.index("api") == FIRST_IN_A_ROW


async def test_the_first_flag_goes_to_the_tasks_a_first_task_starts_and_no_further() -> None:
    lock = PriorityLock()
    got: list[str] = []

    async def take(name: str) -> None:
        async with lock:
            got.append(name)

    async def dispatch_loop() -> None:
        serve_first()
        await asyncio.create_task(take("a dispatch it started"))

    await lock.acquire()
    api = asyncio.create_task(take("api"))
    await asyncio.sleep(0)
    loop = asyncio.create_task(dispatch_loop())
    for _ in range(3):
        await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(api, loop)
    assert got == ["a dispatch it started", "api"]


@pytest.mark.parametrize("handed_the_lock", [False, True])
async def test_a_cancelled_waiter_leaves_the_lock_to_the_next(handed_the_lock: bool) -> None:
    lock = PriorityLock()
    await lock.acquire()
    cancelled = asyncio.create_task(lock.acquire())
    after = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    if handed_the_lock:
        lock.release()  # hands the lock to `cancelled`, which is cancelled before it runs
        cancelled.cancel()
    else:
        cancelled.cancel()
        await asyncio.sleep(0)
        lock.release()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await asyncio.wait_for(after, 1) is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


def test_releasing_an_unlocked_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        PriorityLock().release()
