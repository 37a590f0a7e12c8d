"""Dispatch throughput beside a bare HTTP client and APScheduler's memory store, and
lateness with and without API load, measured in one run against one fake fleet process.

Run: ``python -m bench.throughput [--sizes 2000,10000] [--databases sqlite,postgres]``
from the repository root, with ``pip install 'apscheduler>=3.11,<4' sqlalchemy``.
PostgreSQL is ``BENCH_POSTGRES_URL`` (default as in ``bench.dispatch``); its scheduler
tables are dropped first.

- Throughput: N tasks all due at one instant (one-shot rules made over ``POST /rules``);
  the rate is arrivals per second at the fleet between the first and the last. Beside it,
  the same N POSTs from a minimal aiohttp client (8 connections, the service's default
  ``max_connections``), and APScheduler 3 with its ``MemoryJobStore`` sending them through
  the same kind of client (``bench.dispatch``'s peer). The fleet first takes 1,000 POSTs,
  not counted: a fresh fleet process answers its first requests slower.
- Lateness: 200 tasks spread over 10 s, fleet arrival minus due time, on a service that
  also holds ``--listed`` daily rules; once quiet, once while 8 clients loop the heaviest
  listing, ``GET /tasks`` over a 30-day window.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench import dispatch
from bench.dispatch import (
    LOSS_DEADLINE_S,
    MEMORY,
    SUSTAINED_DEADLINE_S,
    ServiceContender,
    Wave,
    collect,
    daily_firsts,
    measure_fleet_ceiling,
    reset_postgres,
    run_wave,
    running_peer,
    spread_offsets,
)
from bench.server import running_service, threads_until_done
from task_scheduler.testing.fake_fleet import FakeFleetProcess

VIEWERS = 8
WARM_UP = 1000
SPREAD, SPREAD_S = 200, 10


@contextlib.contextmanager
def service(fleet: FakeFleetProcess, workdir: Path, database: str) -> Iterator[ServiceContender]:
    workdir.mkdir()
    config: dict[str, Any] = {"targets": {"default": {"kind": "rmf_http", "base_url": fleet.url}}}
    if database == "postgres":
        reset_postgres()
        config["db_url"] = dispatch.POSTGRES_URL
    with running_service(workdir, **config) as (base, process):
        yield ServiceContender(base, process)


@contextlib.contextmanager
def viewers(base: str, count: int) -> Iterator[list[float]]:
    """``count`` clients looping ``GET /tasks`` over the next 30 days; yields each answer's seconds."""
    took: list[float] = []
    start = datetime.now(timezone.utc)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat()}

    def view(stop: threading.Event) -> None:
        with httpx.Client(base_url=base, timeout=120, trust_env=False) as client:
            while not stop.is_set():
                began = time.perf_counter()
                client.get("/tasks", params=window).raise_for_status()
                took.append(time.perf_counter() - began)

    with threads_until_done(*[view] * count):
        yield took


def rate(wave: Wave | None) -> str:
    return f"{wave.rate:,.0f}/s" if wave is not None and wave.rate else "-"


def ratio(ours: Wave, theirs: Wave) -> str:
    return f"{ours.rate / theirs.rate:.2f}x" if ours.rate and theirs.rate else "-"


def lost(wave: Wave) -> str:
    return f" ({wave.lost} lost, {wave.duplicates} twice)" if wave.lost or wave.duplicates else ""


def run(sizes: Sequence[int], databases: Sequence[str], listed: int) -> str:
    lines = [
        "| tasks due at once | sender | rate | vs aiohttp | vs APScheduler memory |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp, FakeFleetProcess() as fleet:
        root = Path(tmp)
        measure_fleet_ceiling(fleet, WARM_UP)  # a fresh fleet answers its first requests slower
        for size in sizes:
            bare = measure_fleet_ceiling(fleet, size)
            with running_peer("apscheduler", fleet.url, Path(MEMORY), grace=False) as started:
                aps = run_wave(started.peer, fleet, [0] * size, SUSTAINED_DEADLINE_S)
            lines.append(show(f"| {size:,} | aiohttp client | {rate(bare)}{lost(bare)} | | |"))
            lines.append(show(f"| {size:,} | APScheduler memory store | {rate(aps)}{lost(aps)} | | |"))
            for database in databases:
                with service(fleet, root / f"{database}-{size}", database) as ours:
                    wave = run_wave(ours, fleet, [0] * size, SUSTAINED_DEADLINE_S)
                lines.append(
                    show(
                        f"| {size:,} | this service, {database} | {rate(wave)}{lost(wave)}"
                        f" | {ratio(wave, bare)} | {ratio(wave, aps)} |"
                    )
                )
        lines += [
            "",
            f"| lateness, {SPREAD} tasks over {SPREAD_S} s, {listed:,} daily rules | p50 | p99 | max"
            " | listing answers (p50) |",
            "|---|---|---|---|---|",
        ]
        for database in databases:
            with service(fleet, root / f"{database}-lateness", database) as ours:
                ours.create_daily(daily_firsts(listed))
                quiet = run_wave(ours, fleet, spread_offsets(SPREAD, SPREAD_S))
                # The viewers start once the tasks are made (they would hold up making them).
                first_due = math.ceil(time.time() + 10)
                fleet.clear()
                due = ours.create_once([first_due + offset for offset in spread_offsets(SPREAD, SPREAD_S)])
                with viewers(ours.base, VIEWERS) as took:
                    loaded = collect(fleet, due, lambda: False, time.time() > first_due, LOSS_DEADLINE_S)
                    answers = sorted(took)
            median = (
                f"{len(answers)} answers, {answers[len(answers) // 2] * 1000:.0f} ms" if answers else "none"
            )
            for name, wave, listing in (("quiet", quiet, "-"), (f"{VIEWERS} viewers", loaded, median)):
                lines.append(
                    show(
                        f"| {database}, {name}{lost(wave)} | {wave.percentile(0.5):.1f} ms"
                        f" | {wave.percentile(0.99):.1f} ms | {max(wave.lateness_ms):.1f} ms | {listing} |"
                    )
                )
    return "\n".join(lines)


def show(line: str) -> str:
    """Print a result line as soon as it is measured (on stderr), and keep it for the table."""
    print(line, file=sys.stderr, flush=True)
    return line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000", help="tasks due at once, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--listed", type=int, default=2000, help="daily rules the listing goes over")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(run(sizes, args.databases.split(","), args.listed))


if __name__ == "__main__":
    main()
