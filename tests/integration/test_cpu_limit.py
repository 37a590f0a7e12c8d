"""request_cpu_s: a request that asks for too much computing stops with a 422 within the
limit, changes nothing, and is logged and counted; ordinary requests are not affected."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.integration.conftest import T0, Service, running_service

LIMIT_S = 0.3
SLACK_S = 0.3  # the longest step between two checks, and what surrounds the work
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
# Mondays 29 February (once in 28 years) at 100 times of day: each line a search of decades.
RARE = {
    "kind": "rrule",
    "rrule": "\n".join(
        f"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR={i // 10};BYMINUTE={i % 10}" for i in range(100)
    ),
}
EVERY_SECOND = {"kind": "interval", "every": 1, "unit": "seconds"}
WEEKDAYS = {"kind": "weekly", "weekdays": ["mon", "tue", "wed", "thu", "fri"], "times": ["07:00", "19:00"]}


@pytest.fixture
async def limited(db_url, clock) -> AsyncIterator[Service]:
    config = {"db_url": db_url, "timezone": "UTC", "request_cpu_s": LIMIT_S}
    async with running_service(config, clock) as service:
        yield service


def rule(name: str, schedule: dict) -> dict:
    return {"name": name, "task": CLEAN, "schedule": schedule}


@contextlib.contextmanager
def within_limit():
    """The request is served in this process: its CPU time (all threads) is what it took."""
    started = time.process_time()
    yield
    assert time.process_time() - started < LIMIT_S + SLACK_S


def refused(answer) -> bool:
    return answer.status_code == 422 and "request_cpu_s (0.3 s)" in answer.json()["detail"]


async def stopped_count(service: Service, method: str, route: str) -> float:
    text = (await service.http.get("/metrics")).text
    line = f'task_scheduler_http_cpu_spent_total{{method="{method}",route="{route}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_a_preview_of_a_rule_that_fires_once_in_decades_stops_at_the_limit(limited, caplog):
    with within_limit():
        answer = await limited.http.post("/rules/preview", json=rule("rare", RARE), params={"count": 10})
    assert refused(answer), answer.text
    assert "narrow it" in answer.json()["detail"]
    assert await stopped_count(limited, "POST", "/rules/preview") == 1
    assert any("stopped after" in record.getMessage() for record in caplog.records)


async def test_a_listing_or_calendar_that_computes_years_of_seconds_stops_at_the_limit(limited):
    created = await limited.http.post("/rules", json=rule("busy", EVERY_SECOND))
    assert created.status_code == 201, created.text
    deep = {"start": T0.isoformat(), "end": (T0 + timedelta(days=3000)).isoformat(), "offset": 2**31 - 1}
    with within_limit():
        answer = await limited.http.get("/tasks", params=deep)
    assert refused(answer), answer.text
    three_years = {"start": T0.isoformat(), "end": (T0 + timedelta(days=3 * 366)).isoformat()}
    with within_limit():
        answer = await limited.http.get("/calendar.ics", params=three_years)
    assert refused(answer), answer.text
    assert await stopped_count(limited, "GET", "/tasks") == 1
    assert await stopped_count(limited, "GET", "/calendar.ics") == 1


async def test_writes_stopped_at_the_limit_leave_nothing_written(limited):
    created = await limited.http.post("/rules", json=rule("lobby", WEEKDAYS))
    assert created.status_code == 201, created.text
    before = await limited.http.get("/tasks")
    with within_limit():  # the new schedule is checked inside the edit's transaction
        answer = await limited.http.put(f"/rules/{created.json()['id']}", json=rule("lobby", RARE))
    assert refused(answer), answer.text
    assert (await limited.http.get(f"/rules/{created.json()['id']}")).json()["schedule"]["kind"] == "weekly"
    assert (await limited.http.get("/tasks")).json() == before.json()

    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{i}@test\r\nSUMMARY:r{i}\r\nDTSTART:20260105T120000Z\r\n"
        f"RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR={i % 24}\r\nEND:VEVENT\r\n"
        for i in range(100)
    )
    calendar = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n"
    with within_limit():
        answer = await limited.http.post("/rules/import", json={"calendar": calendar, "task": CLEAN})
    assert refused(answer), answer.text
    assert (await limited.http.get("/rules")).json()["total"] == 1


async def test_ordinary_requests_are_served_under_the_same_limit(limited):
    for i in range(5):
        created = await limited.http.post("/rules", json=rule(f"r{i}", WEEKDAYS))
        assert created.status_code == 201, created.text
    year = {"start": T0.isoformat(), "end": (T0 + timedelta(days=366)).isoformat(), "limit": 1000}
    answers = [
        await limited.http.get("/tasks", params=year),
        await limited.http.get("/rules", params={"limit": 1000}),
        await limited.http.get("/calendar.ics"),
        await limited.http.get(
            "/scheduled_tasks",
            params={"start_before": (T0 + timedelta(days=366)).isoformat(), "until_after": T0.isoformat()},
        ),
        await limited.http.get("/rules/1/preview", params={"count": 1000}),
        await limited.http.post("/rules/preview", json=rule("x", WEEKDAYS), params={"count": 1000}),
    ]
    assert [answer.status_code for answer in answers] == [200] * len(answers)
    assert len(answers[0].json()["items"]) == 1000
    assert await stopped_count(limited, "GET", "/tasks") == 0
