"""Rule creation over HTTP on SQLite: how long one rule takes, whatever its length.

Run: ``python -m bench.create_rules`` (from the repository root, with the package installed).
Compares against the first Open-RMF task-scheduler, measured on this machine kind before
this service existed: 0.74 s to create a 1-day minutely rule, 5.4 s for a 7-day one, and
48 daily 30-day rules per second.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.server import peak_rss_mib, running_service

FIRST_SCHEDULER = {"minutely, 1 day": 0.74, "minutely, 7 days": 5.4}
FIRST_SCHEDULER_RULES_PER_S = 48.0
REPEAT = 20
TASK = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}


def rule_body(name: str, schedule: dict) -> dict:
    return {"name": name, "timezone": "UTC", "schedule": schedule, "task": TASK}


def main() -> None:
    start = "2030-01-01T00:00:00"
    kinds = {
        "minutely, no end": {"kind": "cron", "expression": "* * * * *", "start": start},
        "minutely, 1 day": {
            "kind": "cron",
            "expression": "* * * * *",
            "start": start,
            "end": "2030-01-02T00:00:00",
        },
        "minutely, 7 days": {
            "kind": "cron",
            "expression": "* * * * *",
            "start": start,
            "end": "2030-01-08T00:00:00",
        },
        "daily, 1 year": {"kind": "daily", "times": ["07:00"], "start": start, "end": "2030-12-31T23:59:59"},
    }
    with tempfile.TemporaryDirectory() as tmp, running_service(Path(tmp)) as (base, process):
        with httpx.Client(base_url=base, timeout=30) as http:
            print(f"{'rule':<22} {'median ms':>10} {'max ms':>8}  first scheduler")
            for label, schedule in kinds.items():
                samples = []
                for i in range(REPEAT):
                    began = time.perf_counter()
                    response = http.post("/rules", json=rule_body(f"{label} {i}", schedule))
                    samples.append(time.perf_counter() - began)
                    response.raise_for_status()
                median = statistics.median(samples)
                reference = FIRST_SCHEDULER.get(label)
                versus = f"{reference:.2f} s ({reference / median:,.0f}x faster)" if reference else "-"
                print(f"{label:<22} {median * 1000:>10.1f} {max(samples) * 1000:>8.1f}  {versus}")

            began = time.perf_counter()
            month_end = (datetime.now(timezone.utc) + timedelta(days=30)).replace(tzinfo=None).isoformat()
            for i in range(100):
                # Starting now, so each rule also stores its first occurrence in the same transaction.
                schedule = {"kind": "daily", "times": ["07:00"], "end": month_end}
                http.post("/rules", json=rule_body(f"daily 30 days {i}", schedule)).raise_for_status()
            rate = 100 / (time.perf_counter() - began)
            ratio = rate / FIRST_SCHEDULER_RULES_PER_S
            print(f"100 daily 30-day rules: {rate:.0f} rules/s (first scheduler 48/s: {ratio:.1f}x)")
            print(f"service peak RSS: {peak_rss_mib(process.pid):.0f} MiB")


if __name__ == "__main__":
    main()
