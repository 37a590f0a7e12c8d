"""The console clicked through as an operator and a viewer would, in headless Chromium,
against a real service process and the fake fleet."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from task_scheduler.domain.messages import TASK_LABEL
from tests.browser.conftest import SITE_ZONE, Site

pytestmark = pytest.mark.e2e
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
# axe-core's script, as the axe-playwright-python package ships it.
AXE_JS = str(resources.files("axe_playwright_python") / "axe.min.js")


def next_week_rule(site: Site, name: str, times: list[str]) -> dict:
    answer = site.api(
        "POST",
        "/rules",
        json={
            "name": name,
            "schedule": {"kind": "weekly", "weekdays": ["tue", "thu"], "times": times},
            "task": CLEAN,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def tasks_of(site: Site, rule_id: int, start: datetime) -> list[dict]:
    """The rule's occurrences in the week from ``start``."""
    params = {"rule_id": rule_id, "start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()}
    return site.api("GET", "/tasks", params=params).json()["items"]


def show_next_week(page: Page) -> None:
    page.goto(page.url.split("#")[0] + "#calendar")
    page.locator(".fc-timeGridWeek-button").click()
    page.locator(".fc-next-button").click()


def serious_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=AXE_JS)
    result = page.evaluate("async () => await axe.run()")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_an_operator_creates_a_weekly_rule_with_a_live_preview_and_sees_it_in_the_week(site, page_as):
    page = page_as("operator")
    page.get_by_role("button", name="Rules").click()
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name").fill("Lobby, Tuesdays and Thursdays")
    page.get_by_label("Times (HH:MM, …)").fill("09:30")
    page.get_by_label("Times (HH:MM, …)").blur()
    for day in ("mon", "wed", "fri"):
        page.locator(f"input[name=weekday-{day}]").uncheck()
    page.locator("input[name=weekday-tue]").check()
    page.locator("input[name=weekday-thu]").check()
    preview = page.get_by_test_id("preview").locator("li")
    expect(preview).to_have_count(10)
    for line in preview.all_inner_texts():
        day = datetime.fromisoformat(line[:10]).strftime("%a")
        assert day in ("Tue", "Thu") and line[11:16] == "09:30", line
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("tr[data-rule='Lobby, Tuesdays and Thursdays']")).to_be_visible()

    show_next_week(page)
    shown = page.locator(".fc-timegrid-event", has_text="Lobby, Tuesdays and Thursdays")
    expect(shown).to_have_count(2)
    expect(shown.first).to_contain_text("09:30")  # the site's zone, not the browser's


def test_every_recurrence_kind_of_the_form_previews(site, page_as):
    page = page_as("operator")
    page.get_by_role("button", name="Rules").click()
    page.get_by_role("button", name="New rule").click()
    preview = page.get_by_test_id("preview").locator("li")
    for kind in ("interval", "daily", "weekly", "monthly", "monthly_weekday", "cron", "rrule"):
        with page.expect_response(lambda r: "/rules/preview" in r.url) as answer:
            page.get_by_label("Repeats").select_option(kind)
        assert answer.value.status == 200, (kind, answer.value.text())
        expect(preview).to_have_count(10)
    page.get_by_label("Repeats").select_option("once")
    page.get_by_label("At (wall clock)").fill("2031-05-04T06:30")
    expect(preview).to_have_count(1)
    expect(preview).to_contain_text("2031-05-04 06:30:00 (+02:00)")


def test_the_preview_calls_out_a_clock_change(site, page_as):
    page = page_as("operator")
    page.get_by_role("button", name="Rules").click()
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Repeats").select_option("daily")
    page.get_by_label("Times (HH:MM, …)").fill("02:30")
    page.get_by_label("Times (HH:MM, …)").blur()
    page.get_by_label("Start (wall clock)").fill("2027-03-26T00:00")
    changed = page.get_by_test_id("preview").locator("li.dst")
    # 02:30 does not exist in Berlin on 2027-03-28: it runs at 03:30, summer time.
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("2027-03-28 03:30:00 (+02:00) clock change: UTC+01:00 to UTC+02:00")
    expect(changed).to_contain_text("wall-clock time shifts")


def test_an_operator_skips_one_occurrence_and_drags_another_to_a_later_slot(site, page_as):
    rule = next_week_rule(site, "Skip and move", ["10:00"])
    page = page_as("operator")
    show_next_week(page)
    shown = page.locator(".fc-timegrid-event", has_text="Skip and move")
    expect(shown).to_have_count(2)

    shown.first.click()
    page.get_by_role("button", name="Skip").click()
    expect(page.locator(".fc-timegrid-event.status-skipped", has_text="Skip and move")).to_have_count(1)

    movable = page.locator(".fc-timegrid-event.status-scheduled", has_text="Skip and move")
    box = movable.bounding_box()
    slot = page.locator("td.fc-timegrid-slot-lane[data-time='13:00:00']").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 4)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, slot["y"] + 6, steps=12)
    page.mouse.move(box["x"] + box["width"] / 2, slot["y"] + 4, steps=2)
    page.mouse.up()
    moved_there = page.locator(".fc-timegrid-event.status-scheduled", has_text="Skip and move")
    expect(moved_there.filter(has_text="13:00")).to_have_count(1)
    expect(moved_there).to_have_count(1)

    zone = ZoneInfo(SITE_ZONE)
    monday = datetime.fromisoformat(page.locator(".fc-col-header-cell").first.get_attribute("data-date"))
    upcoming = sorted(tasks_of(site, rule["id"], monday.replace(tzinfo=zone)), key=lambda t: t["original_at"])
    assert upcoming[0]["status"] == "skipped"
    moved = datetime.fromisoformat(upcoming[1]["scheduled_at"]).astimezone(zone)
    assert (moved.hour, moved.minute) == (13, 0)
    assert datetime.fromisoformat(upcoming[1]["original_at"]).astimezone(zone).hour == 10


def test_an_occurrence_turns_dispatched_live_when_the_fleet_receives_it(site, page_as):
    at = (datetime.now(timezone.utc) + timedelta(seconds=12)).replace(microsecond=0)
    rule = site.api(
        "POST",
        "/rules",
        json={"name": "Due in a moment", "schedule": {"kind": "once", "at": at.isoformat()}, "task": CLEAN},
    ).json()
    page = page_as("operator")
    page.locator(".fc-timeGridDay-button").click()
    shown = page.locator(".fc-timegrid-event", has_text="Due in a moment")
    expect(shown).to_have_class(css_class("status-scheduled"))
    expect(page.locator("[data-live=on]")).to_be_visible()
    loads = len([u for u in site.requested if "/tasks?" in u])

    expect(shown).to_have_class(css_class("status-dispatched"), timeout=30_000)
    assert any(task.startswith(f"{rule['id']}-") for task in site.fleet.counts(TASK_LABEL))
    # Recoloured from the event stream, not by loading the window again.
    assert len([u for u in site.requested if "/tasks?" in u]) == loads


def css_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){name}(\s|$)")


def test_an_operator_pauses_a_rule(site, page_as):
    next_week_rule(site, "To pause", ["11:00"])
    page = page_as("operator")
    page.get_by_role("button", name="Rules").click()
    row = page.locator("tr[data-rule='To pause']")
    row.get_by_role("button", name="Pause").click()
    expect(row.locator("td.state")).to_have_text("paused")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()


def test_a_viewer_is_offered_no_edit_controls(site, page_as):
    next_week_rule(site, "Seen by a viewer", ["08:00"])
    page = page_as("viewer")
    show_next_week(page)
    shown = page.locator(".fc-timegrid-event", has_text="Seen by a viewer")
    expect(shown).to_have_count(2)
    expect(page.locator(".fc-event-draggable")).to_have_count(0)
    shown.first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    for action in ("Skip", "Run now", "Disable", "Move"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)
    page.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Rules").click()
    expect(page.locator("tr[data-rule='Seen by a viewer']")).to_be_visible()
    for action in ("New rule", "Pause", "Delete", "Edit"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)


def test_every_page_passes_axe_without_serious_violations(site, page_as):
    page = page_as("admin")
    found = {}
    for name in ("calendar", "rules", "runs", "targets"):
        page.goto(f"{site.url}/#{name}")
        page.get_by_role("heading", level=2).first.wait_for()
        page.wait_for_load_state("networkidle")
        found[name] = serious_violations(page)
    page.goto(f"{site.url}/#rules")
    page.get_by_role("button", name="New rule").click()
    page.get_by_test_id("preview").locator("li").first.wait_for()
    found["rule form"] = serious_violations(page)
    assert found == {name: [] for name in found}


def test_nothing_loads_from_outside_the_service(site, page_as):
    page = page_as("admin")
    for path in ("/#calendar", "/#rules", "/#runs", "/#targets", "/docs", "/redoc"):
        page.goto(site.url + path)
        page.wait_for_load_state("networkidle")
    assert site.requested, "no request was recorded"
    assert site.outside() == []
