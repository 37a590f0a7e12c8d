"""Hostile requests with and without ``request_cpu_s``: each one's wall and CPU time, then
dispatch lateness and an ordinary request's latency while a client loops the first of them.

Run: ``python -m bench.hostile [--limits none,1]`` from the repository root (SQLite, a
fake fleet process). ``none`` leaves ``request_cpu_s`` out of the configuration: the
default, or no limit at all on a version without it (run this file there for a baseline).

- Each hostile request, once per limit, on a service holding a rule that fires every
  second: its answer, wall time, and the CPU the service process used meanwhile
  (``process_cpu_seconds_total`` from ``/metrics``, all threads).
- Lateness: 200 tasks spread over 10 s, fleet arrival minus due time, while one client
  loops the hostile preview; beside it, the latency of ``GET /rules?limit=10`` asked every
  100 ms by another client meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.dispatch import LOSS_DEADLINE_S, ServiceContender, collect, spread_offsets
from bench.server import running_service, threads_until_done
from bench.throughput import SPREAD, SPREAD_S, show
from task_scheduler.testing.fake_fleet import FakeFleetProcess

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
# Mondays 29 February at 100 times of day: each line a search of decades.
RARE = {
    "kind": "rrule",
    "rrule": "\n".join(
        f"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR={i // 10};BYMINUTE={i % 10}" for i in range(100)
    ),
}
PREVIEW = ("POST", "/rules/preview", {"count": 10})
NOW = datetime.now(timezone.utc).replace(microsecond=0)


EVENTS = "".join(
    f"BEGIN:VEVENT\r\nUID:{i}@bench\r\nSUMMARY:r{i}\r\nDTSTART:{NOW:%Y%m%dT%H%M%SZ}\r\n"
    f"RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR={i % 24}\r\nEND:VEVENT\r\n"
    for i in range(100)
)
CALENDAR = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n{EVENTS}END:VCALENDAR\r\n"
# (label, method, path, params) of each hostile request; rule 1 fires every second.
HOSTILE = [
    ("preview of a rule firing once in 28 years, 100 times a day", *PREVIEW),
    ("import of 100 events each firing once in 28 years", "POST", "/rules/import", {}),
    (
        "GET /calendar.ics, 30 days of a rule every second",
        "GET",
        "/calendar.ics",
        {"start": NOW.isoformat(), "end": (NOW + timedelta(days=30)).isoformat(), "rule_id": 1},
    ),
]


def workdir(path: Path) -> Path:
    path.mkdir()
    return path


def process_cpu(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("process_cpu_seconds_total not found")


def ask(client: httpx.Client, method: str, path: str, params: dict[str, object]) -> httpx.Response:
    bodies = {
        "/rules/preview": {"name": "x", "task": CLEAN, "schedule": RARE},
        "/rules/import": {"calendar": CALENDAR, "task": CLEAN},
    }
    return client.request(method, path, params=params, json=bodies.get(path))


@contextlib.contextmanager
def looping(base: str) -> Iterator[list[float]]:
    """One client looping the hostile preview, another asking GET /rules?limit=10 every 100 ms;
    yields the latter's latencies."""
    took: list[float] = []

    def attack(stop: threading.Event) -> None:
        with httpx.Client(base_url=base, timeout=600, trust_env=False) as client:
            while not stop.is_set():
                ask(client, *PREVIEW)

    def ordinary(stop: threading.Event) -> None:
        with httpx.Client(base_url=base, timeout=600, trust_env=False) as client:
            while not stop.wait(0.1):
                began = time.perf_counter()
                client.get("/rules", params={"limit": 10}).raise_for_status()
                took.append(time.perf_counter() - began)

    with threads_until_done(attack, ordinary):
        yield took


def run(limits: Sequence[str]) -> str:
    lines = ["| hostile request | request_cpu_s | answer | wall | service CPU |", "|---|---|---|---|---|"]
    loaded = [
        "",
        f"| while a client loops the preview, {SPREAD} tasks over {SPREAD_S} s | lateness p50 | p99 | max"
        " | GET /rules p50 | max |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp, FakeFleetProcess() as fleet:
        for limit in limits:
            config: dict[str, object] = {"targets": {"default": {"kind": "rmf_http", "base_url": fleet.url}}}
            if limit != "none":
                config["request_cpu_s"] = float(limit)
            with (
                running_service(workdir(Path(tmp) / f"limit-{limit}"), **config) as (base, process),
                httpx.Client(base_url=base, timeout=600, trust_env=False) as client,
            ):
                seconds = {"kind": "interval", "every": 1, "unit": "seconds", "start": NOW.isoformat()}
                client.post(
                    "/rules", json={"name": "s", "task": CLEAN, "schedule": seconds}
                ).raise_for_status()
                for label, method, path, params in HOSTILE:
                    cpu, began = process_cpu(client), time.perf_counter()
                    answer = ask(client, method, path, params)
                    wall, cpu = time.perf_counter() - began, process_cpu(client) - cpu
                    lines.append(
                        show(f"| {label} | {limit} | {answer.status_code} | {wall:.2f} s | {cpu:.2f} s |")
                    )
                client.post("/rules/1/disable").raise_for_status()
                ours = ServiceContender(base, process)
                first_due = math.ceil(time.time() + 10)
                fleet.clear()
                due = ours.create_once([first_due + offset for offset in spread_offsets(SPREAD, SPREAD_S)])
                with looping(base) as took:
                    wave = collect(fleet, due, lambda: False, time.time() > first_due, LOSS_DEADLINE_S)
                    answers = sorted(took)
                loaded.append(
                    show(
                        f"| request_cpu_s {limit} | {wave.percentile(0.5):.1f} ms"
                        f" | {wave.percentile(0.99):.1f} ms | {max(wave.lateness_ms):.1f} ms"
                        f" | {answers[len(answers) // 2] * 1000:.0f} ms | {answers[-1] * 1000:.0f} ms |"
                    )
                )
    return "\n".join(lines + loaded)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="none,1", help="request_cpu_s values (or none), comma-separated")
    args = parser.parse_args(argv)
    print(run(args.limits.split(",")))


if __name__ == "__main__":
    main()
