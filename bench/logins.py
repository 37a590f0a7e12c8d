"""A burst of wrong logins against a real service: what the API's other callers see meanwhile.

``python -m bench.logins [--logins 64] [--per-address N]`` starts the service with
authentication on (SQLite), logs in an admin, then sends ``--logins`` wrong logins at once
(each for a name of its own, so only the per-address limit and the hashing bound apply)
while the admin reads ``GET /rules`` in a loop. It prints the answers to the logins, the
slowest and median ``GET /rules`` during the burst, and the service's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.server import peak_rss_mib, running_service

ADMIN = {"username": "root", "password": "bench admin password"}


async def burst(url: str, logins: int) -> tuple[Counter[int], list[float]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        token = (await http.post("/auth/login", json=ADMIN)).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        done = asyncio.Event()
        latencies: list[float] = []

        async def read_rules() -> None:
            while not done.is_set():
                began = time.perf_counter()
                assert (await http.get("/rules", headers=admin)).status_code == 200
                latencies.append(time.perf_counter() - began)

        reader = asyncio.create_task(read_rules())
        answers = await asyncio.gather(
            *(
                http.post("/auth/login", json={"username": f"guess{n}", "password": "wrong"})
                for n in range(logins)
            )
        )
        done.set()
        await reader
        return Counter(answer.status_code for answer in answers), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=64)
    parser.add_argument(
        "--per-address", type=int, help="auth_login_max_failures_per_address (default: the service's)"
    )
    args = parser.parse_args()
    options = {
        "auth_enabled": True,
        "auth_jwt_secret": "a-bench-secret-0123456789abcdefghijklmnop",
        "auth_admin_username": ADMIN["username"],
        "auth_admin_password": ADMIN["password"],
    }
    if args.per_address:
        options["auth_login_max_failures_per_address"] = args.per_address
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_service(Path(workdir), **options) as (url, process),
    ):
        began = time.perf_counter()
        statuses, latencies = asyncio.run(burst(url, args.logins))
        took = time.perf_counter() - began
        rss = peak_rss_mib(process.pid)
    print(f"{args.logins} wrong logins at once: answers {dict(sorted(statuses.items()))}, burst {took:.2f} s")
    print(
        f"GET /rules meanwhile: {len(latencies)} calls, median {statistics.median(latencies) * 1000:.0f} ms, "
        f"slowest {max(latencies) * 1000:.0f} ms; service peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
