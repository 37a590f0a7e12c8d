"""A client of /scheduled_tasks written only from the contract (rmf-web-scheduled-tasks.md,
section 5): the calls the RMF dashboard makes, with the bodies it sends, nothing more."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# What the task form sends for a patrol (contract, section 5).
TASK_FORM_REQUEST = {
    "category": "patrol",
    "description": {"places": ["pantry", "lobby"], "rounds": 1},
    "unix_millis_earliest_start_time": 0,
    "unix_millis_request_time": 1767614400000,
    "priority": {"type": "binary", "value": 0},
    "requester": "alice",
    "labels": ["task_definition_id=patrol", "destination=lobby"],
}


def iso_with_offset(moment: datetime) -> str:
    """The dashboard's toISOStringWithTimezone: local time with the browser's offset."""
    return moment.isoformat(timespec="seconds")


class DashboardClient:
    """What the dashboard's scheduling screens do, in a browser set to ``zone``."""

    def __init__(self, base_url: str, zone: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=10)
        self.zone = ZoneInfo(zone)

    def close(self) -> None:
        self.http.close()

    def schedule_task(self, task_request: dict[str, Any], weekdays: list[str], at: str) -> None:
        """The task form's "schedule": one schedule per ticked weekday; start and until are
        not sent (the dashboard dropped them)."""
        schedules = [{"period": day, "at": at} for day in weekdays]
        response = self.http.post(
            "/scheduled_tasks", json={"task_request": task_request, "schedules": schedules}
        )
        response.raise_for_status()

    def calendar_week(self, monday: date) -> list[dict[str, Any]]:
        """getRemoteEvents for the week view holding ``monday`` (browser-local week)."""
        start = datetime.combine(monday, datetime.min.time(), self.zone)
        end = start + timedelta(days=7) - timedelta(milliseconds=1)
        params = {"start_before": _js_iso(end), "until_after": _js_iso(start)}
        response = self.http.get("/scheduled_tasks", params=params)
        response.raise_for_status()
        return response.json()

    def occurrences(self, task: dict[str, Any], monday: date) -> list[datetime]:
        """The events the calendar draws for a task: day and weekday periods only, daily or
        weekly steps (``every`` ignored), minus except dates, within start_from..until."""
        events = []
        for offset in range(7):
            day = monday + timedelta(days=offset)
            if day.isoformat() in task["except_dates"]:
                continue
            for schedule in task["schedules"]:
                if schedule["period"] not in ("day", WEEKDAYS[day.weekday()]):
                    continue
                hours, minutes = (int(part) for part in schedule["at"].split(":")[:2])
                start = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=self.zone)
                if task["start_from"] and start < _minute(task["start_from"]):
                    continue
                if task["until"] and start > _minute(task["until"]) + timedelta(seconds=59):
                    continue
                events.append(start)
        return sorted(events)

    def delete_occurrence(self, task_id: int, event_start: datetime) -> None:
        response = self.http.post(
            f"/scheduled_tasks/{task_id}/except_date",
            json={"except_date": iso_with_offset(event_start.astimezone(self.zone))},
        )
        response.raise_for_status()

    def edit_occurrence(
        self, task: dict[str, Any], event_start: datetime, task_request: dict[str, Any], at: str
    ) -> None:
        """editScheduledTaskEvent: skip the original, then a new weekly series for the edit."""
        self.delete_occurrence(task["id"], event_start)
        self.schedule_task(task_request, [WEEKDAYS[event_start.astimezone(self.zone).weekday()]], at)

    def edit_series(self, task: dict[str, Any], weekdays: list[str], at: str) -> dict[str, Any]:
        """editScheduledTaskSchedule: the form prefilled from the listed task, schedules only."""
        body = {
            "task_request": task["task_request"],
            "schedules": [{"period": d, "at": at} for d in weekdays],
        }
        response = self.http.post(f"/scheduled_tasks/{task['id']}/update", json=body)
        response.raise_for_status()
        return response.json()

    def delete_series(self, task_id: int) -> None:
        self.http.delete(f"/scheduled_tasks/{task_id}").raise_for_status()


def _js_iso(moment: datetime) -> str:
    """JavaScript's Date.toISOString(): UTC with milliseconds and Z."""
    return (
        moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def _minute(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(second=0, microsecond=0)
