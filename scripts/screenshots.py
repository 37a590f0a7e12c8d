#!/usr/bin/env python3
"""Screenshots of each console page into docs/images/, against a real service with sample rules.

Usage: .venv/bin/python scripts/screenshots.py   (needs /usr/bin/chromium and the test extra)
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
PATROL = {
    "kind": "rmf",
    "request": {"category": "patrol", "description": {"places": ["a", "b"], "rounds": 1}},
}


def sample_rules(url: str) -> None:
    """A few rules of different kinds, one run already, so every page has something to show."""
    monday = (datetime.now(timezone.utc) - timedelta(days=datetime.now(timezone.utc).weekday())).date()
    rules = [
        {
            "name": "Lobby clean",
            "schedule": {"kind": "weekly", "weekdays": ["mon", "wed", "fri"], "times": ["07:00", "15:00"]},
            "task": CLEAN,
        },
        {
            "name": "Night patrol",
            "schedule": {"kind": "interval", "every": 4, "unit": "hours", "start": f"{monday}T01:00:00"},
            "task": PATROL,
        },
        {
            "name": "Linen restock",
            "schedule": {"kind": "monthly_weekday", "nth": 2, "weekday": "tue", "times": ["10:30"]},
            "task": CLEAN,
        },
        {
            "name": "Daily report",
            "schedule": {"kind": "daily", "times": ["18:00"], "start": f"{monday}T00:00:00"},
            "task": {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9/report"},
        },
    ]
    for rule in rules:
        httpx.post(url + "/rules", json=rule, timeout=10).raise_for_status()


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, FakeFleetProcess() as fleet:
        service = ServiceProcess(
            Path(tmp),
            timezone="Europe/Berlin",
            targets={"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
        )
        service.start()
        try:
            sample_rules(service.url)
            upcoming = httpx.get(service.url + "/tasks", params={"limit": 60}).json()["items"]
            httpx.post(f"{service.url}/tasks/{upcoming[0]['id']}/dispatch").raise_for_status()
            cleans = [t for t in upcoming if t["category"] == "clean"]
            httpx.delete(f"{service.url}/tasks/{cleans[1]['id']}").raise_for_status()
            httpx.patch(f"{service.url}/tasks/{cleans[2]['id']}", json={"enabled": False}).raise_for_status()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for name in ("calendar", "rules", "runs", "targets"):
                    page.goto(f"{service.url}/#{name}")
                    page.wait_for_load_state("networkidle")
                    if name == "calendar" and page.locator(".fc-timegrid-event").count() < 10:
                        page.locator(".fc-next-button").click()  # late in the week: show the next
                        page.locator(".fc-timegrid-event").nth(10).wait_for()
                    page.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=False)
                page.goto(f"{service.url}/#rules")
                page.get_by_role("button", name="New rule").click()
                page.wait_for_selector("ol.preview li")
                page.screenshot(path=str(IMAGES / "console-rule-form.png"))
                browser.close()
        finally:
            service.stop()


if __name__ == "__main__":
    main()
