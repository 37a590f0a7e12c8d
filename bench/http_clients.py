"""The fleet client: aiohttp beside httpx, posting the same task requests to one fake fleet.

Run: ``python -m bench.http_clients`` from the repository root (httpx comes with the test
extra). Each client posts ``dispatch_task_request`` messages to a fake fleet process with
at most 8 in flight (a target's default ``max_connections``), as the service does; httpx
also with 64 in flight on 64 connections, as the service had before. Prints requests per
second and the client's own CPU time per request, twice each, alternating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from task_scheduler.testing.fake_fleet import FakeFleetProcess

REQUESTS = 3000
IN_FLIGHT = 8
MESSAGE = {
    "type": "dispatch_task_request",
    "request": {
        "category": "clean",
        "description": {"zone": "lobby"},
        "labels": ["task_scheduler.task=bench"],
    },
}


async def timed(post: Callable[[], Awaitable[None]], in_flight: int = IN_FLIGHT) -> tuple[float, float]:
    """Requests per second and client CPU ms per request for REQUESTS posts, ``in_flight`` at once."""
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            await post()

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(REQUESTS)))
    return REQUESTS / (time.perf_counter() - began), (time.process_time() - cpu) / REQUESTS * 1000


async def with_httpx(url: str, in_flight: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as http:

        async def post() -> None:
            response = await http.post(url + "/tasks/dispatch_task", json=MESSAGE, timeout=10)
            response.json()

        return await timed(post, in_flight)


async def with_aiohttp(url: str) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def post() -> None:
            async with http.post(url + "/tasks/dispatch_task", json=MESSAGE) as response:
                await response.json()

        return await timed(post)


def main() -> None:
    with FakeFleetProcess() as fleet:
        contenders = {
            "aiohttp (the service's client)": lambda: with_aiohttp(fleet.url),
            "httpx": lambda: with_httpx(fleet.url, IN_FLIGHT),
            "httpx, 64 in flight on 64 connections": lambda: with_httpx(fleet.url, 64),
        }
        print(f"{REQUESTS:,} POSTs to the fake fleet, {IN_FLIGHT} in flight unless said")
        for _ in range(2):
            for name, run in contenders.items():
                rate, cpu_ms = asyncio.run(run())
                print(f"  {name:<36} {rate:>7,.0f} requests/s  {cpu_ms:.3f} ms client CPU per request")
                fleet.clear()


if __name__ == "__main__":
    main()
