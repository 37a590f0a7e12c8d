"""The background loops' shared pass loop: failures retried, cancellation ends it."""

from __future__ import annotations

import asyncio

from task_scheduler.services.wakeup import every


async def test_a_failed_pass_is_logged_and_the_next_one_runs(caplog):
    passes = 0
    third = asyncio.Event()

    async def one_pass() -> None:
        nonlocal passes
        passes += 1
        if passes == 3:
            third.set()
        if passes == 1:
            raise RuntimeError("database away")

    loop = asyncio.create_task(every(0, one_pass, "test"))
    await asyncio.wait_for(third.wait(), timeout=5)
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    assert loop.cancelled() and "test pass failed" in caplog.text


async def test_a_cancellation_a_driver_turned_into_its_own_error_ends_the_loop():
    blocked = asyncio.Event()

    async def one_pass() -> None:
        blocked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("Cancelled during execution") from None

    loop = asyncio.create_task(every(0, one_pass, "test"))
    await blocked.wait()
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    assert loop.cancelled()
