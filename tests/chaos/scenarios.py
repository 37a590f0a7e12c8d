"""Fault scenarios against real processes: service replicas, a fake fleet, PostgreSQL.

Each scenario starts what it needs, injects its fault, and returns a :class:`Tally` read
from the fleet's own records (which task labels arrived, when, how often) and from the
service's task statuses. Sizes are arguments: the tests run them small and bounded,
``python -m tests.chaos`` runs them at full size and prints the report. Everything is
on loopback; the fleet and every replica are processes of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from task_scheduler.domain.messages import TASK_LABEL
from task_scheduler.domain.tasks import task_id
from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess
from tests.databases import clean_database

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
DISPATCH_ROUTE = "POST /tasks/dispatch_task"
SETTLE_S = 30.0
"""How long after the last due time a scenario waits for stragglers before counting."""


# --- results ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What became of the occurrences one scenario made due."""

    scenario: str
    due: int
    delivered: int = 0
    duplicated: int = 0
    lost: int = 0
    missed: int = 0
    """Recorded as missed by the service, with the reason (counted apart from lost)."""
    lateness_ms: list[float] = field(default_factory=list)
    rate: float | None = None
    """Deliveries per second from the first arrival to the last (a burst's throughput)."""
    lost_ids: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    """Occurrences whose fate contradicts what the scenario expects of them."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What else the scenario observed (kills, CPU, readiness, ...), for the report and tests."""

    def percentile(self, q: float) -> float | None:
        if not self.lateness_ms:
            return None
        ordered = sorted(self.lateness_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def utc(epoch: float) -> datetime:
    millis = round(epoch * 1000)
    return datetime.fromtimestamp(millis // 1000, timezone.utc) + timedelta(milliseconds=millis % 1000)


def first_arrivals(records: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """Per task label: when it first reached the fleet (kept), and how many times it was kept."""
    first: dict[str, float] = {}
    kept: dict[str, int] = {}
    for record in records:
        if not record["route"].startswith("POST") or not record.get("task_id"):
            continue
        for label in record["labels"]:
            key, _, value = label.partition("=")
            if key == TASK_LABEL:
                first[value] = min(first.get(value, record["time"]), record["time"])
                kept[value] = kept.get(value, 0) + 1
    return first, kept


def tally(
    name: str, expected: dict[str, float], records: Sequence[dict[str, Any]], missed: set[str] = frozenset()
) -> Tally:
    """Count ``expected`` (task id -> due epoch) against what the fleet kept."""
    first, kept = first_arrivals(records)
    result = Tally(name, due=len(expected))
    for key, due in expected.items():
        if key in kept:
            result.delivered += 1
            result.duplicated += kept[key] - 1
            result.lateness_ms.append((first[key] - due) * 1000)
        elif key in missed:
            result.missed += 1
        else:
            result.lost += 1
            result.lost_ids.append(key)
    arrivals = sorted(first[key] for key in expected if key in first)
    if len(arrivals) > 1 and arrivals[-1] > arrivals[0]:
        result.rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return result


# --- processes -------------------------------------------------------------------------


class Cluster:
    """``n`` replicas of the service on one database, each a process with its own port."""

    def __init__(self, workroot: Path, n: int, *, own: Sequence[dict[str, Any]] = (), **config: Any) -> None:
        """``own[i]``, where given, is what replica ``i`` sets apart from ``config``."""
        self.replicas = []
        for index in range(n):
            workdir = workroot / f"replica-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            settings = {**config, **(own[index] if index < len(own) else {})}
            self.replicas.append(ServiceProcess(workdir, replica_id=f"replica-{index}", **settings))
        self.http = httpx.Client(timeout=30, trust_env=False)

    def __enter__(self) -> Cluster:
        for replica in self.replicas:  # one after the other: the first one migrates
            replica.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.stop()
        self.http.close()

    def url(self) -> str:
        """The first replica's address: where scenarios read back what happened."""
        return self.replicas[0].url

    def create_rules(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST each rule, round robin over the replicas."""
        created = []
        for index, body in enumerate(bodies):
            replica = self.replicas[index % len(self.replicas)]
            response = self.http.post(replica.url + "/rules", json=body)
            response.raise_for_status()
            created.append(response.json())
        return created

    def schedule(self, bodies: Sequence[dict[str, Any]]) -> dict[str, float]:
        """Create these rules; return task id -> due epoch of every occurrence they make."""
        return expected_of(bodies, self.create_rules(bodies))

    def statuses(self, start: datetime, end: datetime, status: str) -> set[str]:
        """Ids of the tasks in the window with this status."""
        found: set[str] = set()
        params = {"start": start.isoformat(), "end": end.isoformat(), "status": status, "limit": 1000}
        while True:
            page = self.http.get(self.url() + "/tasks", params=params).json()
            found.update(item["id"] for item in page["items"])
            if page["next"] is None:
                return found
            params = {"cursor": page["next"], "limit": 1000}

    def fates(self, task_ids: Sequence[str]) -> dict[str, str]:
        """``status: reason`` of each of these tasks, to say what became of a lost one."""
        fates = {}
        for key in task_ids:
            task = self.http.get(f"{self.url()}/tasks/{key}").json()
            fates[key] = f"{task.get('status')}: {task.get('status_reason')}"
        return fates

    def cpu_seconds(self) -> float:
        """User plus system CPU time the first replica's process has used."""
        process = self.replicas[0].process
        assert process is not None
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interval_rules(
    count: int, every_s: float, occurrences: int, first_due: float, *, target: str = "default", **policy: Any
) -> list[dict[str, Any]]:
    """``count`` rules firing every ``every_s`` seconds, their starts spread over one period."""
    return [
        {
            "name": f"{target} rule {index}",
            "schedule": {
                "kind": "interval",
                "every": every_s,
                "unit": "seconds",
                "start": utc(first_due + index * every_s / count).isoformat(),
                "count": occurrences,
            },
            "task": {**CLEAN, "target": target},
            "policy": policy,
        }
        for index in range(count)
    ]


def expected_of(bodies: Sequence[dict[str, Any]], created: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Task id -> due epoch of every occurrence of these ``once`` and ``interval`` rules."""
    expected = {}
    for body, rule in zip(bodies, created, strict=True):
        schedule = body["schedule"]
        if schedule["kind"] == "once":
            times = [datetime.fromisoformat(schedule["at"])]
        else:
            start = datetime.fromisoformat(schedule["start"])
            times = [start + timedelta(seconds=k * schedule["every"]) for k in range(schedule["count"])]
        expected.update((task_id(rule["id"], at), at.timestamp()) for at in times)
    return expected


def wait_for(condition: Callable[[], bool], deadline: float) -> None:
    """Poll ``condition`` until it holds or the deadline (epoch seconds) passes; the tally says which."""
    while time.time() < deadline and not condition():
        time.sleep(0.25)


def postgres_url(workroot: Path) -> str:
    return asyncio.run(clean_database("postgres", workroot))


# --- scenarios -------------------------------------------------------------------------


def replicas_killed(
    workroot: Path,
    *,
    replicas: int = 3,
    rules: int = 20,
    every_s: int = 2,
    occurrences: int = 15,
    seed: int = 1,
) -> Tally:
    """Replicas on PostgreSQL, one SIGKILLed at random moments and started again."""
    rng = random.Random(seed)
    db_url = postgres_url(workroot)
    with FakeFleetProcess() as fleet:
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}
        config = {"db_url": db_url, "targets": {"default": target}, "lease_s": 2.0}
        with Cluster(workroot, replicas, **config) as cluster:
            first_due = time.time() + 3
            bodies = interval_rules(
                rules, every_s, occurrences, first_due, catch_up="all", misfire_grace_s=300
            )
            expected = cluster.schedule(bodies)
            last_due = max(expected.values())
            kills = 0
            while time.time() < last_due:
                time.sleep(rng.uniform(1.0, 3.0))
                victim = cluster.replicas[rng.randrange(replicas)]
                victim.kill()
                kills += 1
                time.sleep(rng.uniform(0.0, 0.5))
                victim.start()
            wait_for(lambda: set(fleet.counts(TASK_LABEL)) >= set(expected), time.time() + SETTLE_S)
            window = (utc(first_due - 1), utc(last_due + 1))
            wait_for(lambda: not cluster.statuses(*window, "dispatching"), time.time() + 10)
            stuck = cluster.statuses(*window, "dispatching")
            result = tally(f"{replicas} replicas, SIGKILL + restart", expected, fleet.received())
            result.facts["lost"] = cluster.fates(result.lost_ids)
    result.facts.update(kills=kills, stuck=len(stuck))
    return result


def fleet_outage(
    workroot: Path,
    *,
    rules: int = 4,
    every_s: int = 1,
    run_s: int = 20,
    down_at_s: float = 4,
    down_for_s: float = 8,
    grace_s: float = 4,
) -> Tally:
    """The fleet manager stops for ``down_for_s`` and comes back on the same port."""
    with FakeFleetProcess() as fleet:
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}
        with Cluster(workroot, 1, targets={"default": target}) as cluster:
            first_due = time.time() + 2
            policy = {"misfire_grace_s": grace_s, "retry_backoff_s": 1, "retry_backoff_max_s": 4}
            bodies = interval_rules(rules, every_s, run_s // every_s, first_due, **policy)
            expected = cluster.schedule(bodies)
            time.sleep(max(0.0, first_due + down_at_s - time.time()))
            fleet.stop()
            down_at, cpu_before = time.time(), cluster.cpu_seconds()
            time.sleep(down_for_s)
            cpu_down = cluster.cpu_seconds() - cpu_before
            fleet.start()
            back_at = time.time()
            last_due = max(expected.values())
            window = (utc(first_due - 1), utc(last_due + 1))

            def settled() -> bool:  # every occurrence at the fleet or recorded as missed
                delivered, _ = first_arrivals(fleet.received())
                return set(delivered) | cluster.statuses(*window, "missed") >= set(expected)

            wait_for(settled, last_due + grace_s + SETTLE_S)
            missed = cluster.statuses(*window, "missed")
            runs = cluster.http.get(
                cluster.url() + "/runs",
                params={"start": utc(down_at).isoformat(), "end": utc(back_at).isoformat(), "limit": 1},
            ).json()["total"]
            records = fleet.received()
            result = tally("fleet down, then back", expected, records, missed)
            result.facts["lost"] = cluster.fates(result.lost_ids)
    first, _ = first_arrivals(records)
    # An occurrence whose last try (a second before its deadline) fell while the fleet was
    # down must be missed; one sent before the outage, or with a try after the fleet came
    # back, must be delivered. Within about a second of either edge, both are right.
    for key, due in expected.items():
        if due > down_at + 0.5 and due + grace_s - 1 < back_at - 1:
            if key in first:
                result.wrong.append(f"{key}: delivered, but its grace ran out while the fleet was down")
        elif (due < down_at - 1 or due + grace_s - 1 > back_at + 1) and key not in first:
            result.wrong.append(f"{key}: not delivered although the fleet was up within its grace")
    due_while_down = sum(down_at <= due < back_at for due in expected.values())
    result.facts.update(
        down_s=back_at - down_at,
        attempts_while_down=runs,
        occurrences_due_while_down=due_while_down,
        cpu_while_down_s=cpu_down,
    )
    return result


def slow_fleet(
    workroot: Path,
    *,
    rules: int = 5,
    every_s: int = 1,
    run_s: int = 12,
    delay_s: float = 3,
    connections: int = 2,
) -> tuple[Tally, Tally]:
    """One fleet answers each task after ``delay_s``; rules sent to another must stay on time.

    Returns the tallies for the slow fleet (with the most requests it had in hand at once)
    and for the fast one.
    """
    with FakeFleetProcess() as slow, FakeFleetProcess() as fast:
        slow.behave({"mode": "delay", "seconds": delay_s})
        targets = {
            "default": {"kind": "rmf_http", "base_url": fast.url, "timeout_s": 2.0},
            "slow": {
                "kind": "rmf_http",
                "base_url": slow.url,
                "timeout_s": delay_s + 5,
                "max_connections": connections,
            },
        }
        # A replica holds at most 4 x connections of the slow target's tasks: half the 16
        # slots at the test size (2 connections), all of them at the report's size (4).
        with Cluster(workroot, 1, targets=targets, dispatch_concurrency=16) as cluster:
            first_due = time.time() + 2
            grace = {"misfire_grace_s": 600}
            slow_bodies = interval_rules(rules, every_s, run_s // every_s, first_due, target="slow", **grace)
            fast_bodies = interval_rules(rules, every_s, run_s // every_s, first_due, **grace)
            slow_expected = cluster.schedule(slow_bodies)
            fast_expected = cluster.schedule(fast_bodies)
            wait_for(
                lambda: set(fast.counts(TASK_LABEL)) >= set(fast_expected), max(fast_expected.values()) + 10
            )
            slow_records, fast_records = slow.received(), fast.received()
    arrivals = sorted(r["time"] for r in slow_records if r["route"] == DISPATCH_ROUTE)
    in_hand = max((sum(a <= t < a + delay_s for a in arrivals) for t in arrivals), default=0)
    slow_tally = tally("slow fleet: its own rules (backlog)", slow_expected, slow_records)
    slow_tally.facts.update(most_in_hand=in_hand, connections=connections, backlog=slow_tally.lost)
    slow_tally.lost = 0  # still waiting their turn when the run ended: a backlog, not a loss
    fast_tally = tally("slow fleet: rules sent to another", fast_expected, fast_records)
    return slow_tally, fast_tally


@contextlib.contextmanager
def background(target: Callable[[threading.Event], None]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


class CannotRestart(Exception):
    """This machine's PostgreSQL cannot be restarted from here."""


def postgres_restarted(workroot: Path, *, rules: int = 4, every_s: int = 1, run_s: int = 15) -> Tally:
    """PostgreSQL restarted under load: the service says it is not ready, then catches up."""
    db_url = postgres_url(workroot)
    ctl = shutil.which("pg_ctlcluster")
    if ctl is None or not Path("/etc/postgresql").is_dir():
        raise CannotRestart("pg_ctlcluster not found: this scenario restarts the local PostgreSQL")
    version = sorted(os.listdir("/etc/postgresql"))[0]
    with FakeFleetProcess() as fleet:
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}
        with Cluster(workroot, 1, db_url=db_url, targets={"default": target}) as cluster:
            first_due = time.time() + 2
            bodies = interval_rules(rules, every_s, run_s // every_s, first_due, misfire_grace_s=120)
            expected = cluster.schedule(bodies)
            readiness: list[int] = []

            def watch(stop: threading.Event) -> None:
                while not stop.is_set():
                    try:
                        readiness.append(cluster.http.get(cluster.url() + "/readyz", timeout=2).status_code)
                    except httpx.HTTPError:
                        readiness.append(0)
                    stop.wait(0.1)

            with background(watch):
                time.sleep(max(0.0, first_due + run_s / 3 - time.time()))
                began = time.time()
                subprocess.run(
                    [ctl, "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=60
                )
                restart_s = time.time() - began
                last_due = max(expected.values())
                wait_for(lambda: set(fleet.counts(TASK_LABEL)) >= set(expected), last_due + SETTLE_S)
            alive = cluster.replicas[0].process is not None and cluster.replicas[0].process.poll() is None
        result = tally("PostgreSQL restarted", expected, fleet.received())
    result.facts.update(
        restart_s=restart_s,
        not_ready_answers=readiness.count(503),
        other_answers=sorted({code for code in readiness if code not in (200, 503)}),
        ready_at_the_end=bool(readiness) and readiness[-1] == 200,
        kept_running=alive,
    )
    return result


def graceful_restarts(
    workroot: Path,
    *,
    rules: int = 4,
    every_s: int = 1,
    run_s: int = 15,
    restarts: int = 3,
    delay_s: float = 1.5,
) -> Tally:
    """SIGTERM in the middle of slow dispatches, then a start: claims are finished or
    handed back, nothing stays in ``dispatching``, nothing is sent twice."""
    with FakeFleetProcess() as fleet:
        fleet.behave({"mode": "delay", "seconds": delay_s})
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": delay_s + 5}
        config = {"targets": {"default": target}, "shutdown_grace_s": 0.5}
        with Cluster(workroot, 1, **config) as cluster:
            first_due = time.time() + 2
            # catch_up=all: what falls due during a restart runs, rather than only the newest.
            bodies = interval_rules(
                rules, every_s, run_s // every_s, first_due, catch_up="all", misfire_grace_s=120
            )
            expected = cluster.schedule(bodies)
            replica = cluster.replicas[0]
            for index in range(restarts):
                time.sleep(max(0.0, first_due + (index + 1) * run_s / (restarts + 1) - time.time()))
                replica.stop()
                replica.start()
            last_due = max(expected.values())
            wait_for(lambda: set(fleet.counts(TASK_LABEL)) >= set(expected), last_due + SETTLE_S)
            fleet.behave()
            window = (utc(first_due - 1), utc(last_due + 1))
            wait_for(lambda: not cluster.statuses(*window, "dispatching"), time.time() + 10)
            stuck = cluster.statuses(*window, "dispatching")
            result = tally("SIGTERM mid-dispatch, then a start", expected, fleet.received())
            result.facts.update(restarts=restarts, stuck=len(stuck), lost=cluster.fates(result.lost_ids))
    return result


def once_rules(dues: Sequence[float], prefix: str = "once") -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix} {index}", "schedule": {"kind": "once", "at": utc(due).isoformat()}, "task": CLEAN}
        for index, due in enumerate(dues)
    ]


def replicas_sharing(workroot: Path, *, replicas: int, offsets: Sequence[float], label: str) -> Tally:
    """One-shot tasks due at ``offsets`` (seconds after a common start) on PostgreSQL, shared
    by ``replicas`` replicas: lateness, and the rate from first to last arrival."""
    db_url = postgres_url(workroot)
    with FakeFleetProcess() as fleet:
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 10.0}
        with Cluster(workroot, replicas, db_url=db_url, targets={"default": target}) as cluster:
            began = time.time()
            cluster.create_rules(once_rules([began + 12 * 3600] * 20, "calibration"))  # to time creation
            per_rule = (time.time() - began) / 20
            first_due = time.time() + 1.5 * per_rule * len(offsets) + 3
            bodies = once_rules([round(first_due + offset, 3) for offset in offsets])
            expected = cluster.schedule(bodies)
            wait_for(
                lambda: set(fleet.counts(TASK_LABEL)) >= set(expected), max(expected.values()) + SETTLE_S
            )
            result = tally(f"{label}, {replicas} replica(s)", expected, fleet.received())
            result.facts["lost"] = cluster.fates(result.lost_ids)
    return result


def api_under_load(
    workroot: Path, *, clients: int = 8, duration_s: float = 15, tasks_per_s: int = 50, split: bool = False
) -> tuple[Tally, dict[str, float]]:
    """``clients`` API clients read and preview without pause while the service dispatches
    ``tasks_per_s`` tasks a second: one replica on SQLite (the default deployment), or with
    ``split`` an API-only replica taking the load and a dispatching one, on PostgreSQL."""
    with FakeFleetProcess() as fleet:
        target = {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 10.0}
        config: dict[str, Any] = {"targets": {"default": target}}
        if split:
            config.update(db_url=postgres_url(workroot), own=[{"run_dispatcher": False}])
        with Cluster(workroot, 2 if split else 1, **config) as cluster:
            count = int(duration_s * tasks_per_s)
            first_due = time.time() + count * 0.006 + 3
            offsets = [index / tasks_per_s for index in range(count)]
            bodies = once_rules([round(first_due + offset, 3) for offset in offsets])
            expected = cluster.schedule(bodies)
            url = cluster.url()
            preview = {"name": "p", "schedule": {"kind": "daily", "times": ["07:00"]}, "task": CLEAN}
            calls: list[tuple[str, str, Any]] = [
                ("GET", "/rules?limit=50", None),
                ("GET", "/tasks?limit=50", None),
                ("GET", "/runs?limit=50", None),
                ("GET", "/rules/1", None),
                ("POST", "/rules/preview?count=10", preview),
                ("GET", "/readyz", None),
            ]
            latencies: list[float] = []
            errors: list[int] = []  # status codes of answers that were not 2xx

            def client(stop: threading.Event) -> None:
                with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
                    for index in range(10**9):
                        if stop.is_set():
                            return
                        method, path, body = calls[index % len(calls)]
                        began = time.perf_counter()
                        response = http.request(method, path, json=body)
                        latencies.append(time.perf_counter() - began)
                        if response.status_code >= 300:
                            errors.append(response.status_code)

            time.sleep(max(0.0, first_due - time.time()))
            with contextlib.ExitStack() as stack:
                for _ in range(clients):
                    stack.enter_context(background(client))
                time.sleep(duration_s)
            wait_for(
                lambda: set(fleet.counts(TASK_LABEL)) >= set(expected), max(expected.values()) + SETTLE_S
            )
            setup = "API-only + dispatching replica, PostgreSQL" if split else "one replica, SQLite"
            result = tally(f"{tasks_per_s}/s under API load: {setup}", expected, fleet.received())
            dispatchers = cluster.http.get(url + "/runs", params={"limit": 1000}).json()["items"]
            result.facts["replicas_that_dispatched"] = sorted({run["replica"] for run in dispatchers})
    ordered = sorted(latencies)
    load = {
        "clients": clients,
        "requests_per_s": len(ordered) / duration_s,
        "p50_ms": ordered[len(ordered) // 2] * 1000 if ordered else float("nan"),
        "p99_ms": ordered[int(0.99 * len(ordered))] * 1000 if ordered else float("nan"),
        "errors": len(errors),
    }
    return result, load
