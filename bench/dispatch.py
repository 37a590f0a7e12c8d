"""Dispatch on time: this service (SQLite, PostgreSQL) beside APScheduler 3 and `schedule`.

Run: ``python -m bench.dispatch [--quick]`` from the repository root, with the package
installed and ``pip install 'apscheduler>=3.11,<4' sqlalchemy schedule`` (PostgreSQL is
used when ``postgres://postgres@127.0.0.1:5432/test`` answers; its scheduler tables are
dropped first, that database is scratch).

Every contender does the same job against the same fake fleet process
(``task_scheduler.testing.fake_fleet``): at each task's due time, POST a
``dispatch_task_request`` with the labels ``task_scheduler.rule=<id>`` and
``task_scheduler.task=<id>-<due>`` to ``/tasks/dispatch_task``. Deliveries are read
back from the fleet's records (arrival ``time`` is ``time.time()`` in the fleet), so
lateness is fleet arrival minus due time, whoever sent it.

Contenders, each a process of its own:

- this service, started by :func:`bench.server.running_service` with default settings
  (``dispatch_concurrency`` 64, ``dispatch_batch`` 200), on SQLite and on PostgreSQL;
  tasks are one-shot rules made over ``POST /rules`` (four requests in flight);
- APScheduler 3 ``AsyncIOScheduler`` with a ``SQLAlchemyJobStore`` on a SQLite file, the
  job an async function that POSTs through one shared ``aiohttp.ClientSession`` (the
  service's own HTTP client); with the
  default ``misfire_grace_time`` (1 s) and with ``None`` (no limit);
- the ``schedule`` library driven as rmf-web's api-server drives it (``run_pending()``
  then ``await asyncio.sleep(1)``, each job ``create_task``-ing the POST), through the
  same kind of client.

Like the service's default target (``max_connections`` 8), a peer has at most 8 POSTs in
flight, each on a kept-alive connection, the rest waiting their turn outside the client's
pool (``--peer-connections``; see :class:`PeerState` for why).

The two peers run in a child process of this script (``--peer``, commands as JSON lines
on stdin), so every contender's RSS and start-up are those of one process and the
benchmark's own polling never shares their event loop.

Measures, each on a fresh database or job store and a fresh process:

(a) tasks all due at one instant; (b) tasks spread evenly over 10 s (1,000 tasks: one
every 10 ms; due times are whole milliseconds). ``schedule``'s ``at()`` takes whole
seconds, so its jobs are set for the second at or after their due time and that rounding
counts in its lateness. A task not at the
fleet 30 s after its due time is lost; a task label received twice is a duplicate.
(c) sustained dispatches per second: many tasks all due at one instant, the rate
between the first and the last arrival, waiting up to 120 s (a blast from this script
over 8 connections, no scheduler, shows what the fleet itself takes).
(d) VmRSS with many daily rules/jobs, 2 s after creating them.
(e) start-up with them stored: for the service, process start to ``/readyz`` 200
(polled every 50 ms); for APScheduler, ``start()`` until its first pass over the store
ran (process start to that point is in the notes).

Due times: each contender first creates a few tasks due 12 hours ahead to time
creation, then picks due = now + 1.5 x the estimated creation time + 3 s, so creating
finishes before anything is due (a wave where it did not is flagged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import itertools
import json
import logging
import math
import os
import platform
import select
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx

from bench.server import running_service
from task_scheduler.domain.messages import RULE_LABEL, TASK_LABEL, build_message
from task_scheduler.domain.tasks import task_id
from task_scheduler.storage.database import TABLES
from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import die_with_parent

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
"""Scratch: the scheduler's tables are dropped there (``BENCH_POSTGRES_URL`` names another)."""
TASK = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
DISPATCH_ROUTE = "POST /tasks/dispatch_task"
LOSS_DEADLINE_S = 30.0  # a task not at the fleet this long after its due time is lost
SUSTAINED_DEADLINE_S = 120.0  # (c) measures a rate: late senders get longer to finish
CREATE_WORKERS = 4  # POST /rules requests in flight while creating rules
CALIBRATION = 40  # far-future tasks created first, to time creation
MARGIN_S = 3.0
POLL_S = 0.5
PEER_CONNECTIONS = 8  # the service's default max_connections of an rmf_http target
FLEET_ALONE_CONNECTIONS = PEER_CONNECTIONS
NAME_WIDTH = 42
PEER_REPLY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Sizes:
    burst: int
    spread: int
    spread_s: int
    sustained: int
    rules: int


FULL = Sizes(burst=1000, spread=1000, spread_s=10, sustained=5000, rules=10_000)
QUICK = Sizes(burst=200, spread=200, spread_s=10, sustained=1000, rules=1000)


# --- results ---------------------------------------------------------------------------


@dataclass
class Wave:
    """A batch of tasks as the fleet saw them: lateness of each task's first arrival."""

    expected: int
    lateness_ms: list[float]
    first_arrival: float
    last_arrival: float
    duplicates: int
    rejected: int
    created_late: bool

    @property
    def lost(self) -> int:
        return self.expected - len(self.lateness_ms)

    def percentile(self, q: float) -> float | None:
        """Nearest rank over the tasks received."""
        if not self.lateness_ms:
            return None
        rank = math.ceil(q * len(self.lateness_ms))
        return self.lateness_ms[min(len(self.lateness_ms), max(1, rank)) - 1]

    @property
    def rate(self) -> float | None:
        """Arrivals per second between the first and the last."""
        span = self.last_arrival - self.first_arrival
        return (len(self.lateness_ms) - 1) / span if len(self.lateness_ms) > 1 and span > 0 else None


@dataclass
class Result:
    name: str
    burst: Wave | None = None
    spread: Wave | None = None
    sustained: Wave | None = None
    rss_mib: float | None = None
    startup_s: float | None = None
    notes: list[str] = field(default_factory=list)


# --- processes -----------------------------------------------------------------------


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


def instant(due: float) -> datetime:
    """An epoch due time as the UTC datetime it stands for, to the millisecond (no float noise)."""
    millis = round(due * 1000)
    return datetime.fromtimestamp(millis // 1000, timezone.utc) + timedelta(milliseconds=millis % 1000)


def collect(
    fleet: FakeFleetProcess,
    due: Mapping[str, float],
    settled: Callable[[], bool],
    created_late: bool,
    deadline_s: float,
) -> Wave:
    """Wait until every task reached the fleet, the sender has nothing left, or the deadline."""
    last_due = max(due.values())
    deadline = last_due + deadline_s
    while time.time() < deadline:
        time.sleep(POLL_S)
        counts = fleet.counts(RULE_LABEL)
        if all(key in counts for key in due):
            time.sleep(1.0)  # room for a duplicate on its way
            break
        if time.time() > last_due and settled():
            break
    return wave_from(fleet.received(), due, created_late)


def wave_from(records: Sequence[Mapping[str, Any]], due: Mapping[str, float], created_late: bool) -> Wave:
    first: dict[str, float] = {}
    per_task: Counter[str] = Counter()
    rejected = 0
    for record in records:
        if record["route"] != DISPATCH_ROUTE:
            continue
        labels = dict(label.partition("=")[::2] for label in record["labels"])
        key = labels.get(RULE_LABEL)
        if key not in due:
            continue
        if record["status"] != 200:
            rejected += 1
            continue
        first[key] = min(first.get(key, math.inf), record["time"])
        per_task[labels.get(TASK_LABEL, "")] += 1
    arrivals = sorted(first.values())
    return Wave(
        expected=len(due),
        lateness_ms=sorted((first[key] - due[key]) * 1000 for key in first),
        first_arrival=arrivals[0] if arrivals else 0.0,
        last_arrival=arrivals[-1] if arrivals else 0.0,
        duplicates=sum(n - 1 for n in per_task.values()),
        rejected=rejected,
        created_late=created_late,
    )


# --- contenders ------------------------------------------------------------------------


class Contender(Protocol):
    """What a wave needs from a scheduler under test."""

    def create_once(self, dues: Sequence[float]) -> dict[str, float]:
        """One task per due time (epoch seconds); returns rule key -> due time."""

    def create_daily(self, firsts: Sequence[float]) -> None:
        """One daily rule per first occurrence (epoch seconds, hours away)."""

    def settled(self, expected: int) -> bool:
        """True when nothing more will be sent (unknown: False)."""


def run_wave(
    contender: Contender,
    fleet: FakeFleetProcess,
    offsets: Sequence[float],
    deadline_s: float = LOSS_DEADLINE_S,
) -> Wave:
    """Create one task per offset (seconds after the first due time), then watch them."""
    began = time.perf_counter()
    far = math.floor(time.time()) + 12 * 3600  # 12 h ahead, also as schedule's daily at()
    contender.create_once([far + i for i in range(CALIBRATION)])
    per_task = (time.perf_counter() - began) / CALIBRATION
    first_due = math.ceil(time.time() + 1.5 * per_task * len(offsets) + MARGIN_S)
    fleet.clear()
    due = contender.create_once([round(first_due + offset, 3) for offset in offsets])
    created_late = time.time() > first_due
    return collect(fleet, due, lambda: contender.settled(len(offsets)), created_late, deadline_s)


def spread_offsets(count: int, seconds: int) -> list[float]:
    """Evenly spaced, to the millisecond."""
    return [round(i * seconds / count, 3) for i in range(count)]


class ServiceContender:
    """This service over its HTTP API: one-shot rules, created four requests at a time."""

    def __init__(self, base: str, process: subprocess.Popen[Any]) -> None:
        self.base = base
        self.pid = process.pid
        self._names = itertools.count()

    def _create(self, bodies: list[dict[str, Any]]) -> list[str]:
        async def create_all() -> list[str]:
            ids: list[str] = [""] * len(bodies)
            pending = iter(range(len(bodies)))
            async with httpx.AsyncClient(base_url=self.base, timeout=60, trust_env=False) as http:

                async def worker() -> None:
                    for index in pending:
                        response = await http.post("/rules", json=bodies[index])
                        response.raise_for_status()
                        ids[index] = str(response.json()["id"])

                await asyncio.gather(*(worker() for _ in range(CREATE_WORKERS)))
            return ids

        return asyncio.run(create_all())

    def _body(self, schedule: dict[str, Any]) -> dict[str, Any]:
        return {"name": f"bench {next(self._names)}", "timezone": "UTC", "schedule": schedule, "task": TASK}

    def create_once(self, dues: Sequence[float]) -> dict[str, float]:
        bodies = [self._body({"kind": "once", "at": iso_utc(due)}) for due in dues]
        return dict(zip(self._create(bodies), dues, strict=True))

    def create_daily(self, firsts: Sequence[float]) -> None:
        times = [f"{datetime.fromtimestamp(first, timezone.utc):%H:%M}" for first in firsts]
        self._create([self._body({"kind": "daily", "times": [at]}) for at in times])

    def settled(self, expected: int) -> bool:
        return False


def iso_utc(epoch: float) -> str:
    return instant(epoch).isoformat(timespec="milliseconds")


def daily_firsts(count: int) -> list[float]:
    """First occurrences of ``count`` daily rules, whole minutes 6 to 18 hours from now."""
    now = math.floor(time.time() / 60) * 60
    return [now + 6 * 3600 + (i % 720) * 60 for i in range(count)]


def reset_postgres() -> str:
    """Drop the scheduler's tables in the scratch database; return the server version."""
    import asyncpg

    async def reset() -> str:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
            return await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()

    return asyncio.run(reset())


def measure_service(fleet: FakeFleetProcess, workroot: Path, database: str, sizes: Sizes) -> Result:
    """Each wave on a fresh database and a fresh service process; then the footprint."""
    result = Result(f"this service, {database}")
    config: dict[str, Any] = {"targets": {"default": {"kind": "rmf_http", "base_url": fleet.url}}}
    if database == "PostgreSQL":
        config["db_url"] = POSTGRES_URL

    def service(stage: str, *, fresh: bool = True) -> contextlib.AbstractContextManager[Any]:
        workdir = workroot / f"service-{database}-{stage}"
        workdir.mkdir(exist_ok=True)
        if fresh and database == "PostgreSQL":
            reset_postgres()
        return running_service(workdir, **config)

    with service("burst") as (base, process):
        result.burst = run_wave(ServiceContender(base, process), fleet, [0] * sizes.burst)
    progress(f"{result.name}: burst done")
    with service("spread") as (base, process):
        offsets = spread_offsets(sizes.spread, sizes.spread_s)
        result.spread = run_wave(ServiceContender(base, process), fleet, offsets)
    progress(f"{result.name}: spread done")
    with service("sustained") as (base, process):
        result.sustained = run_wave(
            ServiceContender(base, process), fleet, [0] * sizes.sustained, SUSTAINED_DEADLINE_S
        )
    progress(f"{result.name}: sustained done")

    with service("rules") as (base, process):
        began = time.perf_counter()
        ServiceContender(base, process).create_daily(daily_firsts(sizes.rules))
        created = time.perf_counter() - began
        time.sleep(2)
        result.rss_mib = vm_rss_mib(process.pid)
    began = time.perf_counter()
    with service("rules", fresh=False) as (base, process):
        result.startup_s = time.perf_counter() - began
        time.sleep(2)
        restarted_rss = vm_rss_mib(process.pid)
    result.notes.append(
        f"{sizes.rules:,} daily rules created in {created:.1f} s ({sizes.rules / created:.0f}/s);"
        f" RSS {restarted_rss:.0f} MiB after a restart with them"
    )
    progress(f"{result.name}: footprint done")
    return result


# --- peers: the parent's side ----------------------------------------------------------


class PeerContender:
    """A peer scheduler in a child process (``--peer``), driven by JSON lines on its stdin."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.pid = process.pid
        self._keys = itertools.count(1)

    def call(self, command: str, **fields: Any) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the peer has no pipes")
        stdin.write(json.dumps({"cmd": command, **fields}) + "\n")
        stdin.flush()
        readable, _, _ = select.select([stdout], [], [], PEER_REPLY_TIMEOUT_S)
        line = stdout.readline() if readable else ""
        if not line:
            raise RuntimeError(f"the peer did not answer {command!r} (exit code {self.process.poll()})")
        return json.loads(line)

    def create_once(self, dues: Sequence[float]) -> dict[str, float]:
        keys = [str(next(self._keys)) for _ in dues]
        self.call("add_once", jobs=list(zip(keys, dues, strict=True)))
        return dict(zip(keys, dues, strict=True))

    def create_daily(self, firsts: Sequence[float]) -> None:
        self.call("add_daily", firsts=list(firsts))

    def settled(self, expected: int) -> bool:
        stats = self.call("stats")
        return stats["posted"] + stats["failed"] + stats["missed"] >= expected


@dataclass
class StartedPeer:
    peer: PeerContender
    start_s: float  # the scheduler's start() until its first pass ran, in the child
    ready_s: float  # process start until then


@contextlib.contextmanager
def running_peer(
    kind: str, fleet_url: str, store: Path, *, grace: bool = True, connections: int = PEER_CONNECTIONS
) -> Iterator[StartedPeer]:
    argv = [sys.executable, "-m", "bench.dispatch", "--peer", kind, "--fleet", fleet_url]
    argv += ["--store", f"{store}", "--peer-connections", f"{connections}"]
    if not grace:
        argv.append("--no-grace")
    began = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent
    )
    peer = PeerContender(process)
    try:
        start_s = peer.call("start")["seconds"]
        yield StartedPeer(peer, start_s, time.perf_counter() - began)
        peer.call("stop")
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


@dataclass(frozen=True)
class PeerSpec:
    name: str
    kind: str  # "apscheduler" or "schedule"
    grace: bool = True  # APScheduler's default misfire_grace_time (1 s), else None
    footprint: bool = True  # also measure (d) and (e)


PEERS = (
    PeerSpec("APScheduler, misfire grace 1 s (default)", "apscheduler"),
    PeerSpec("APScheduler, misfire grace None", "apscheduler", grace=False, footprint=False),
    PeerSpec("schedule + rmf-web's 1 s loop", "schedule"),
)


def measure_peer(
    fleet: FakeFleetProcess, workroot: Path, spec: PeerSpec, sizes: Sizes, connections: int
) -> Result:
    """Each wave in a fresh child with a fresh job store; then the footprint, if asked."""
    result = Result(spec.name)
    name, kind, grace = spec.name, spec.kind, spec.grace
    slug = f"{kind}-{'grace' if grace else 'nograce'}"

    def peer(stage: str) -> contextlib.AbstractContextManager[StartedPeer]:
        store = workroot / f"{slug}-{stage}.sqlite3"
        return running_peer(kind, fleet.url, store, grace=grace, connections=connections)

    with peer("burst") as started:
        result.burst = run_wave(started.peer, fleet, [0] * sizes.burst)
    progress(f"{name}: burst done")
    with peer("spread") as started:
        result.spread = run_wave(started.peer, fleet, spread_offsets(sizes.spread, sizes.spread_s))
    progress(f"{name}: spread done")
    with peer("sustained") as started:
        result.sustained = run_wave(started.peer, fleet, [0] * sizes.sustained, SUSTAINED_DEADLINE_S)
    progress(f"{name}: sustained done")
    if not spec.footprint:
        result.notes.append("(d) and (e) not measured again: the same scheduler and store as above")
        return result

    with peer("rules") as started:
        began = time.perf_counter()
        started.peer.create_daily(daily_firsts(sizes.rules))
        created = time.perf_counter() - began
        time.sleep(2)
        result.rss_mib = vm_rss_mib(started.peer.pid)
    result.notes.append(
        f"{sizes.rules:,} daily jobs added in {created:.1f} s ({sizes.rules / created:.0f}/s)"
    )
    if kind == "apscheduler":
        with peer("rules") as started:
            result.startup_s = started.start_s
            time.sleep(2)
            restarted_rss = vm_rss_mib(started.peer.pid)
        result.notes.append(
            f"start-up = start() with {sizes.rules:,} jobs in the store; process start to that point"
            f" {started.ready_s:.2f} s; RSS {restarted_rss:.0f} MiB after a restart with them"
        )
    else:
        result.notes.append("no start-up figure: its jobs live in memory only")
    progress(f"{name}: footprint done")
    return result


def measure_fleet_ceiling(fleet: FakeFleetProcess, count: int) -> Wave:
    """POST ``count`` tasks straight to the fleet, a few at a time: what the fleet itself takes."""

    async def blast() -> float:
        due = time.time()
        state = PeerState(fleet.url, connections=FLEET_ALONE_CONNECTIONS)
        pending = iter(range(1, count + 1))

        async def worker() -> None:
            for key in pending:
                await state.post(str(key), due)

        try:
            await asyncio.gather(*(worker() for _ in range(FLEET_ALONE_CONNECTIONS)))
        finally:
            await state.aclose()
        return due

    fleet.clear()
    due = asyncio.run(blast())
    return wave_from(fleet.received(), {str(key): due for key in range(1, count + 1)}, False)


# --- peers: the child's side -----------------------------------------------------------


class PeerState:
    """What a peer's jobs share: one client to the fleet and the counters the parent reads.

    The client is the one the service uses, aiohttp, set up the same way: at most
    ``connections`` POSTs in flight, the rest waiting their turn on a semaphore, as in the
    service's ``rmf_http`` transport (``max_connections``). Create it inside a running loop.
    """

    def __init__(self, fleet_url: str, connections: int = PEER_CONNECTIONS) -> None:
        self.http = aiohttp.ClientSession(
            base_url=fleet_url,
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self.slots = asyncio.Semaphore(connections)
        self.posted = 0
        self.failed = 0
        self.missed = 0

    async def post(self, rule_id: str, due: float) -> None:
        """The dispatch_task_request the service would send for this task, labels included."""
        async with self.slots:
            message = build_message(
                task_id=task_id(int(rule_id), instant(due)),
                rule_id=int(rule_id),
                template=TASK["request"],
                robot=None,
                fleet=None,
                scheduled_at=instant(due),
                requester="task_scheduler",
                now=datetime.now(timezone.utc),
            )
            try:
                async with self.http.post("/tasks/dispatch_task", json=message) as response:
                    await response.read()
                    response.raise_for_status()
            except (aiohttp.ClientError, TimeoutError):
                self.failed += 1
            else:
                self.posted += 1

    async def aclose(self) -> None:
        await self.http.close()


# APScheduler stores a job's function by reference, so the job is a module-level function
# and reaches the child's state through this global (set once by serve_peer).
_PEER_STATE: PeerState | None = None


async def aps_job(rule_id: str, due: float) -> None:
    if _PEER_STATE is None:
        raise RuntimeError("no peer state in this process")
    await _PEER_STATE.post(rule_id, due)


MEMORY = ":memory:"
"""The store that makes APScheduler keep its jobs in memory (``MemoryJobStore``)."""


class ApsPeer:
    """APScheduler 3: AsyncIOScheduler, SQLAlchemyJobStore on a SQLite file (or its memory
    store), async jobs."""

    def __init__(self, state: PeerState, store: str, *, grace: bool) -> None:
        from apscheduler.events import EVENT_JOB_MISSED
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.state = state
        jobs = MemoryJobStore() if store == MEMORY else SQLAlchemyJobStore(url=f"sqlite:///{store}")
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": jobs},
            job_defaults={} if grace else {"misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # counted, not logged one by one

    def _missed(self, event: Any) -> None:
        self.state.missed += 1

    async def start(self) -> None:
        self.scheduler.start()
        # start() queues its first pass over the store with call_soon; let it run.
        for _ in range(3):
            await asyncio.sleep(0)

    def add_once(self, jobs: Sequence[tuple[str, float]]) -> None:
        for key, due in jobs:
            run_date = instant(due)
            self.scheduler.add_job(aps_job, "date", run_date=run_date, args=[key, due], id=key)

    def add_daily(self, firsts: Sequence[float]) -> None:
        for index, first in enumerate(firsts):
            at = datetime.fromtimestamp(first, timezone.utc)
            key = str(1_000_000 + index)
            self.scheduler.add_job(aps_job, "cron", hour=at.hour, minute=at.minute, args=[key, first], id=key)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


class SchedulePeer:
    """`schedule` as rmf-web's api-server drives it: ``every().day.at(...)``, polled each second."""

    def __init__(self, state: PeerState) -> None:
        import schedule

        self.state = state
        self.schedule = schedule
        self._spinner: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._spinner = asyncio.create_task(self._spin())

    async def _spin(self) -> None:
        while True:
            self.schedule.run_pending()
            await asyncio.sleep(1)

    def _fire(self, key: str, due: float) -> None:
        post = asyncio.get_running_loop().create_task(self.state.post(key, due))
        self._posts.add(post)
        post.add_done_callback(self._posts.discard)

    def add_once(self, jobs: Sequence[tuple[str, float]]) -> None:
        # at() takes local wall-clock whole seconds: the second at or after the due time.
        for key, due in jobs:
            at = time.strftime("%H:%M:%S", time.localtime(math.ceil(due)))
            self.schedule.every().day.at(at).do(self._fire, key, due)

    def add_daily(self, firsts: Sequence[float]) -> None:
        for index, first in enumerate(firsts):
            at = time.strftime("%H:%M", time.localtime(first))
            self.schedule.every().day.at(at).do(self._fire, str(1_000_000 + index), first)

    def stop(self) -> None:
        if self._spinner is not None:
            self._spinner.cancel()
        self.schedule.clear()


async def serve_peer(kind: str, fleet_url: str, store: str, *, grace: bool, connections: int) -> None:
    """The child: answer the parent's commands, one JSON line each, until ``stop`` or EOF."""
    global _PEER_STATE
    state = _PEER_STATE = PeerState(fleet_url, connections)
    peer = ApsPeer(state, store, grace=grace) if kind == "apscheduler" else SchedulePeer(state)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            began = time.perf_counter()
            if command["cmd"] == "start":
                await peer.start()
            elif command["cmd"] == "add_once":
                peer.add_once(command["jobs"])
            elif command["cmd"] == "add_daily":
                peer.add_daily(command["firsts"])
            reply = {
                "seconds": time.perf_counter() - began,
                "posted": state.posted,
                "failed": state.failed,
                "missed": state.missed,
            }
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if command["cmd"] == "stop":
                break
    finally:
        peer.stop()
        await state.aclose()


# --- report ----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def ratio(ours: Wave | None, theirs: Wave | None, figure: Callable[[Wave], float | None]) -> str:
    """``ours / theirs``; ``*`` when either lost tasks, so the figures cover different sets."""
    if ours is None or theirs is None:
        return "-"
    a, b = figure(ours), figure(theirs)
    if a is None or b is None or a <= 0 or b <= 0:
        return "-"
    return f"{a / b:.2f}x" + ("*" if ours.lost or theirs.lost else "")


def wave_table(title: str, results: Sequence[Result], pick: Callable[[Result], Wave | None]) -> list[str]:
    header = (
        f"  {'contender':<{NAME_WIDTH}} {'min':>8} {'p50':>8} {'p99':>8} {'max':>8} {'lost':>6} {'dup':>5}"
    )
    lines = [title, header]
    for result in results:
        wave = pick(result)
        if wave is None:
            lines.append(f"  {result.name:<{NAME_WIDTH}} {'-':>8}")
            continue
        flags = (" (created after due)" if wave.created_late else "") + (
            f" ({wave.rejected} rejected)" if wave.rejected else ""
        )
        cells = " ".join(f"{ms(wave.percentile(q)):>8}" for q in (0.0, 0.5, 0.99, 1.0))
        lines.append(f"  {result.name:<{NAME_WIDTH}} {cells} {wave.lost:>6} {wave.duplicates:>5}{flags}")
    return lines


def report(results: Sequence[Result], sizes: Sizes, ceiling: Wave, environment: Mapping[str, str]) -> str:
    lines = ["Dispatch benchmark: " + ", ".join(f"{key} {value}" for key, value in environment.items()), ""]
    lines += wave_table(
        f"(a) {sizes.burst:,} tasks due at the same instant: lateness at the fleet (of those received), ms",
        results,
        lambda r: r.burst,
    )
    lines.append("")
    lines += wave_table(
        f"(b) {sizes.spread:,} tasks over {sizes.spread_s} s (one every"
        f" {sizes.spread_s * 1000 / sizes.spread:g} ms): lateness at the fleet, ms",
        results,
        lambda r: r.spread,
    )
    lines += [
        "",
        f"(c) sustained: {sizes.sustained:,} tasks due at the same instant, rate from first to last arrival,"
        f" lost = not there {SUSTAINED_DEADLINE_S:.0f} s after due",
        f"  {'contender':<{NAME_WIDTH}} {'tasks/s':>8} {'drain s':>8} {'lost':>6} {'dup':>5}",
    ]
    for name, wave in [
        *((r.name, r.sustained) for r in results),
        (f"fleet alone ({FLEET_ALONE_CONNECTIONS} connections)", ceiling),
    ]:
        if wave is None:
            lines.append(f"  {name:<{NAME_WIDTH}} {'-':>8}")
            continue
        rate = "-" if wave.rate is None else f"{wave.rate:,.0f}"
        drain = wave.percentile(1.0)
        drain_s = "-" if drain is None else f"{drain / 1000:.1f}"
        lines.append(f"  {name:<{NAME_WIDTH}} {rate:>8} {drain_s:>8} {wave.lost:>6} {wave.duplicates:>5}")
    lines += [
        "",
        f"(d) VmRSS with {sizes.rules:,} daily rules/jobs; (e) start-up with them stored",
        f"  {'contender':<{NAME_WIDTH}} {'RSS MiB':>8} {'start s':>8}",
    ]
    for result in results:
        rss = "-" if result.rss_mib is None else f"{result.rss_mib:.0f}"
        startup = "-" if result.startup_s is None else f"{result.startup_s:.2f}"
        lines.append(f"  {result.name:<{NAME_WIDTH}} {rss:>8} {startup:>8}")

    ours = [r for r in results if r.name.startswith("this service")]
    peers = [r for r in results if not r.name.startswith("this service")]
    lines += [
        "",
        "Ratios, this service / peer (lateness: below 1 is better; throughput: above 1 is better)",
        f"  {'':<58} {'a p50':>8} {'a p99':>8} {'b p50':>8} {'b p99':>8} {'c /s':>8}",
    ]
    p50, p99 = (functools.partial(Wave.percentile, q=q) for q in (0.5, 0.99))
    for one in ours:
        for peer in peers:
            cells = [
                ratio(one.burst, peer.burst, p50),
                ratio(one.burst, peer.burst, p99),
                ratio(one.spread, peer.spread, p50),
                ratio(one.spread, peer.spread, p99),
                ratio(one.sustained, peer.sustained, lambda wave: wave.rate),
            ]
            label = f"{one.name.removeprefix('this service, ')} / {peer.name}"
            lines.append(f"  {label:<58} " + " ".join(f"{cell:>8}" for cell in cells))
    lines.append("  * one side lost tasks: its figure covers only those it delivered")

    notes = [f"  {result.name}: {note}" for result in results for note in result.notes]
    if notes:
        lines += ["", "Notes", *notes]
    return "\n".join(lines)


def environment(postgres: str | None) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    return {
        "CPUs": str(os.cpu_count()),
        "Python": platform.python_version(),
        "on": platform.platform(terse=True),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres or "unreachable (skipped)",
        "APScheduler": version("APScheduler"),
        "SQLAlchemy": version("SQLAlchemy"),
        "schedule": version("schedule"),
    }


def postgres_version() -> str | None:
    try:
        return reset_postgres()
    except Exception as error:  # unreachable, no driver: the PostgreSQL row is skipped
        progress(f"PostgreSQL skipped: {type(error).__name__}: {error}")
        return None


def guarded(name: str, measure: Callable[[], Result]) -> Result:
    """Run one contender; a failure becomes a note, and the other contenders still run."""
    try:
        return measure()
    except Exception as error:
        progress(f"{name} failed: {type(error).__name__}: {error}")
        return Result(name, notes=[f"failed: {type(error).__name__}: {error}"])


def run(sizes: Sizes, connections: int) -> str:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, FakeFleetProcess() as fleet:
        workroot = Path(tmp)
        ceiling = measure_fleet_ceiling(fleet, sizes.sustained)
        progress(f"fleet alone: {ceiling.rate or 0:,.0f} tasks/s")
        postgres = postgres_version()
        contenders: list[tuple[str, Callable[[], Result]]] = [
            ("this service, SQLite", lambda: measure_service(fleet, workroot, "SQLite", sizes)),
        ]
        if postgres:
            contenders.append(
                ("this service, PostgreSQL", lambda: measure_service(fleet, workroot, "PostgreSQL", sizes))
            )
        contenders += [
            (spec.name, functools.partial(measure_peer, fleet, workroot, spec, sizes, connections))
            for spec in PEERS
        ]
        results = [guarded(name, measure) for name, measure in contenders]
    text = report(results, sizes, ceiling, {**environment(postgres), "peer connections": f"{connections}"})
    return text + f"\n\nTotal run time {time.perf_counter() - began:.0f} s."


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    parser.add_argument(
        "--peer-connections",
        type=int,
        default=PEER_CONNECTIONS,
        help="most POSTs a peer has in flight (default: a target's max_connections, %(default)s)",
    )
    parser.add_argument("--peer", choices=["apscheduler", "schedule"], help=argparse.SUPPRESS)
    parser.add_argument("--fleet", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--no-grace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        grace = not args.no_grace
        asyncio.run(
            serve_peer(args.peer, args.fleet, args.store, grace=grace, connections=args.peer_connections)
        )
        return
    print(run(QUICK if args.quick else FULL, args.peer_connections))


if __name__ == "__main__":
    main()
