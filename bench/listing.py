"""GET /tasks pages with many daily rules, against a real service process.

Run: ``python -m bench.listing [--sizes 1000,10000,100000] [--requests 30] [--db sqlite,postgres]
[--peer PATH] [--postgres URL]`` from the repository root, with the package installed.
PostgreSQL is ``--postgres``, by default ``postgres://postgres@127.0.0.1:5432/ts_listing_bench``
(scratch: its tables are dropped).

For each database and number of rules: a fresh database, migrated, then the rules stored
directly (one daily time each, spread over the day's minutes, in UTC) with their first
day of occurrences stored as the expander would (horizon 1 day, the default), so no
expansion runs while measuring. Then, for each code under test (this tree; with
``--peer``, also the source tree at PATH, e.g. a ``git worktree`` of main, on the same
database), a fresh service process answers ``--requests`` requests of each page, one at a
time, and the script prints p50/p99 latency and the process's peak RSS (VmHWM) at the end.

Pages: a page of 100 of the default window (now to +7 days) and of a 30-day window; the
first page, and a deep page past the stored day (3 days in, 20 days in for 30 days),
through a cursor made for that position (with ``--peer-offset``, a peer is given
``offset``, the number of occurrences before it, for code without cursors).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
from tortoise import connections

from bench.server import peak_rss_mib
from task_scheduler.domain.listing import Cursor, Position, TaskQuery, encode_cursor
from task_scheduler.services.occurrences import new_task_record, recurrence_of
from task_scheduler.storage.database import TABLES, Database, connection_name
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from task_scheduler.testing.service_process import ServiceProcess

POSTGRES = "postgres://postgres@127.0.0.1:5432/ts_listing_bench"
TASK = {
    "kind": "rmf",
    "target": "default",
    "request": {"category": "clean", "description": {"zone": "lobby"}},
}
HORIZON = timedelta(days=1)


async def fill(db_url: str, rules: int, now: datetime) -> None:
    """A fresh database holding ``rules`` daily rules and their occurrences of the next day."""
    if db_url.startswith("postgres"):
        await drop_tables(db_url)
    database = Database(db_url)
    await database.open(migrate=True)
    try:
        stored_until = now + HORIZON
        for first in range(0, rules, 5000):
            records = []
            for i in range(first, min(rules, first + 5000)):
                minute = i % 1440
                schedule = {"kind": "daily", "times": [f"{minute // 60:02d}:{minute % 60:02d}"]}
                records.append(
                    RuleRecord(
                        id=i + 1,
                        name=f"rule {i}",
                        description="",
                        timezone="UTC",
                        enabled=True,
                        schedule=schedule,
                        task=TASK,
                        policy={},
                        metadata={},
                        task_kind="rmf",
                        category="clean",
                        target="default",
                        expanded_until=stored_until,
                        created_at=now,
                        updated_at=now,
                    )
                )
            await RuleRecord.bulk_create(records, batch_size=1000)
            tasks = [
                new_task_record(record, t, now)
                for record in records
                for t in recurrence_of(record).between(now, stored_until)
            ]
            await TaskRecord.bulk_create(tasks, batch_size=1000)
        if db_url.startswith("postgres"):
            await connections.get(connection_name(db_url)).execute_script(
                "SELECT setval(pg_get_serial_sequence('rules', 'id'), (SELECT max(id) FROM rules));"
                " ANALYZE rules; ANALYZE tasks;"
            )
    finally:
        await database.close()


async def drop_tables(db_url: str) -> None:
    user_host, database = db_url.removeprefix("postgres://").rsplit("/", 1)
    user, host_port = user_host.split("@")
    host, port = host_port.split(":")
    try:
        conn = await asyncpg.connect(user=user, host=host, port=int(port), database=database)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(user=user, host=host, port=int(port), database="postgres")
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        return
    await conn.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in TABLES) + " CASCADE")
    await conn.close()


def pages(now: datetime) -> dict[str, tuple[dict[str, str], datetime, timedelta]]:
    """name -> (query, window start, how deep the deep page is)."""
    week = {"start": now.isoformat(), "limit": "100"}
    month = {**week, "end": (now + timedelta(days=30)).isoformat()}
    return {"7 days": (week, now, timedelta(days=3)), "30 days": (month, now, timedelta(days=20))}


def deep(
    query: dict[str, str], start: datetime, depth: timedelta, rules: int, cursors: bool
) -> dict[str, str]:
    """The page ``depth`` into the window: by cursor, or by offset (one occurrence per rule a day)."""
    if not cursors:
        return {**query, "offset": str(int(rules * depth / timedelta(days=1)))}
    end = datetime.fromisoformat(query["end"]) if "end" in query else start + timedelta(days=7)
    cursor = Cursor(TaskQuery(start=start, end=end), Position(start + depth, ""))
    return {"cursor": encode_cursor(cursor), "limit": query["limit"]}


def measure(http: httpx.Client, params: dict[str, str], n: int) -> str:
    samples = []
    status = 0
    for _ in range(n):
        began = time.perf_counter()
        response = http.get("/tasks", params=params)
        samples.append(time.perf_counter() - began)
        status = response.status_code
        if status == 200:
            assert len(response.json()["items"]) == 100, response.text[:200]
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))] * 1000
    return f"{p50:9.1f} {p99:9.1f} {status:>4}"


def run(
    db_url: str,
    workdir: Path,
    label: str,
    source: Path | None,
    rules: int,
    now: datetime,
    n: int,
    offset: bool = False,
) -> None:
    service = ServiceProcess(workdir, db_url=db_url, timezone="UTC", run_dispatcher=False)
    if source is not None:
        service.env["PYTHONPATH"] = str(source)
    service.start(timeout=120)
    try:
        with httpx.Client(base_url=service.url, timeout=600) as http:
            for name, (query, start, depth) in pages(now).items():
                first = measure(http, query, n)
                cursors = source is None or not offset
                deeper = measure(http, deep(query, start, depth, rules, cursors), n)
                print(f"{label:<8} {rules:>7} {name:<8} first {first}   deep {deeper}", flush=True)
        assert service.process is not None
        print(f"{label:<8} {rules:>7} peak RSS {peak_rss_mib(service.process.pid):.0f} MiB", flush=True)
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--peer-requests", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--peer", type=Path, help="source tree of the code to compare with")
    parser.add_argument("--postgres", default=POSTGRES, help="scratch PostgreSQL database")
    parser.add_argument("--peer-offset", action="store_true", help="the peer has no cursors")
    args = parser.parse_args()
    # The window starts now; occurrences are stored for the day after it.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    print(f"{'code':<8} {'rules':>7} {'window':<8} page       p50 ms    p99 ms code")
    for db in args.db.split(","):
        for rules in map(int, args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                db_url = args.postgres if db == "postgres" else f"sqlite://{Path(tmp) / 'scheduler.sqlite3'}"
                asyncio.run(fill(db_url, rules, now))
                print(f"-- {db}, {rules} daily rules", flush=True)
                run(db_url, Path(tmp), "this", None, rules, now, args.requests)
                if args.peer is not None:
                    run(
                        db_url, Path(tmp), "peer", args.peer, rules, now, args.peer_requests, args.peer_offset
                    )


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    main()
