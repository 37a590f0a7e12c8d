"""The console's first paint with 1,000 rules, in headless Chromium against a real process.

Run: ``python -m bench.console_paint`` (needs /usr/bin/chromium and the test extra).
Reports the browser's first-contentful-paint and the time until the week view shows its
occurrences, each the median of five cold page loads, and what the two API calls the
calendar waits for take on their own.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from task_scheduler.testing.service_process import ServiceProcess

RULES = 1000
LOADS = 5
TASK = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def rule(n: int) -> dict:
    """Daily and weekly rules spread over the day, so a week holds a few thousand occurrences."""
    time = f"{n % 24:02d}:{(n * 7) % 60:02d}"
    if n % 2:
        schedule = {"kind": "weekly", "weekdays": [WEEKDAYS[n % 7]], "times": [time]}
    else:
        schedule = {"kind": "daily", "every": 1 + n % 3, "times": [time]}
    return {"name": f"rule {n:04d}", "timezone": "Europe/Berlin", "schedule": schedule, "task": TASK}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = ServiceProcess(Path(tmp), timezone="Europe/Berlin", run_dispatcher=False)
        service.start()
        try:
            for first in range(0, RULES, 100):
                batch = [rule(n) for n in range(first, first + 100)]
                httpx.post(service.url + "/rules/batch", json=batch, timeout=120).raise_for_status()
            paints, shown = [], []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
                for _ in range(LOADS):
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    page.goto(service.url + "/", wait_until="commit")
                    page.locator(".fc-timegrid-event").first.wait_for(timeout=60_000)
                    timing = page.evaluate(
                        """() => ({
                            fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
                            now: performance.now(),
                            events: document.querySelectorAll('.fc-timegrid-event').length,
                        })"""
                    )
                    paints.append(timing["fcp"])
                    shown.append(timing["now"])
                    page.context.close()
                browser.close()
            week = httpx.get(service.url + "/tasks", params={"limit": 1}).json()["total"]
            began = time.monotonic()
            httpx.get(service.url + "/rules", params={"limit": 1000}, timeout=60).raise_for_status()
            rules_s = time.monotonic() - began
            began = time.monotonic()
            httpx.get(service.url + "/tasks", params={"limit": 1000}, timeout=60).raise_for_status()
            tasks_s = time.monotonic() - began
            print(
                f"{RULES} rules, {week} occurrences in the coming week ({timing['events']} drawn): "
                f"first contentful paint {statistics.median(paints):.0f} ms, "
                f"week view with its occurrences {statistics.median(shown):.0f} ms (median of {LOADS}); "
                f"for comparison GET /rules?limit=1000 {rules_s * 1000:.0f} ms, "
                f"GET /tasks?limit=1000 {tasks_s * 1000:.0f} ms"
            )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
