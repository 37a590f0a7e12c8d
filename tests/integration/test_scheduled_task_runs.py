"""What a scheduled task actually sends to the fleet, day by day: rmf-web api-server's
TestScheduledTaskExecution scenarios, on every database, with the service in UTC and in
UTC+8. The fake clock steps from one due time to the next, as the engine's loops would,
and a real fake fleet over a socket records what arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.domain.messages import TASK_LABEL
from task_scheduler.testing.fake_fleet import running_fake_fleet
from tests.integration.conftest import T0, Service, running_service

CLEAN = {"category": "clean", "description": {"zone": "lobby"}}
STEP = timedelta(hours=6)  # at most this far between expander passes, well within its horizon


@pytest.fixture
async def fleet() -> AsyncIterator[Any]:
    async with running_fake_fleet() as handle:
        yield handle


@pytest.fixture(params=["UTC", "Asia/Singapore"])
async def engine(request, db_url, clock, fleet) -> AsyncIterator[Service]:
    """The service in UTC or UTC+8 (the api-server's tests run in Asia/Singapore), its
    default target the fake fleet."""
    config = {
        "db_url": db_url,
        "timezone": request.param,
        "targets": {"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
    }
    async with running_service(config, clock) as service:
        yield service


def zone(engine: Service) -> ZoneInfo:
    return ZoneInfo(engine.app.state.site_timezone)


def midnight(engine: Service, days: int) -> datetime:
    """Local midnight ``days`` after the day the tests start on (T0, a Monday, local)."""
    day = T0.astimezone(zone(engine)).date() + timedelta(days=days)
    return datetime.combine(day, time(0), zone(engine))


async def create(engine: Service, at: str = "00:00", **body: Any) -> dict[str, Any]:
    body = {"task_request": CLEAN, "schedules": [{"period": "day", "at": at}], **body}
    response = await engine.http.post("/scheduled_tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


class Sent:
    """What reached the fleet: each occurrence (by its label) and the clock when it arrived."""

    def __init__(self, engine: Service, fleet: Any) -> None:
        self.engine, self.fleet = engine, fleet
        self.arrivals: list[tuple[datetime, datetime]] = []

    async def run_until(self, moment: datetime) -> list[datetime]:
        """Run the engine up to ``moment`` as its loops would (expand, then dispatch at each
        due time in turn); return the local occurrences sent so far, each checked on time."""
        store = self.engine.services.store
        clock = self.engine.clock
        for _ in range(1000):
            await self.engine.expand()
            due = await store.next_due_at()
            step = min(moment, clock.now() + STEP, *([due] if due is not None else []))
            clock.set(max(step, clock.now()))
            await self.engine.dispatch()
            self._collect()
            if clock.now() >= moment:
                break
        return [occurrence.astimezone(zone(self.engine)) for occurrence, _ in self.arrivals]

    def _collect(self) -> None:
        records = [r for r in self.fleet.recorder.records if r.route.startswith("POST")]
        for record in records[len(self.arrivals) :]:
            assert record.status == 200 and record.problems == [], record
            [label] = [label for label in record.labels if label.startswith(f"{TASK_LABEL}=")]
            stamp = label.rsplit("-", 1)[1]
            occurrence = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            self.arrivals.append((occurrence, self.engine.clock.now()))
            assert occurrence == self.engine.clock.now(), "sent at its time, not later"


@pytest.fixture
def sent(engine, fleet) -> Sent:
    return Sent(engine, fleet)


def days(*moments: datetime) -> list[date]:
    return [moment.date() for moment in moments]


async def test_schedule_runs_at_midnight(engine, sent):
    await create(engine, schedules=[{"period": "day", "at": "00:00"}, {"period": "monday", "at": "00:00"}])
    assert await sent.run_until(midnight(engine, 1) - timedelta(seconds=1)) == []
    assert await sent.run_until(midnight(engine, 1)) == [midnight(engine, 1)]
    # The api-server sends Monday's twice, once per schedule (a bug of its, contract 6.4):
    # here a time two schedules share is one occurrence, sent once.
    monday = midnight(engine, 7)
    assert monday.weekday() == 0
    assert await sent.run_until(monday) == [midnight(engine, n) for n in range(1, 8)]


async def test_schedule_runs_start_from(engine, sent):
    """start_from at local midnight: that midnight's occurrence is the first."""
    await create(engine, start_from=midnight(engine, 2).isoformat())
    assert await sent.run_until(midnight(engine, 2) - timedelta(seconds=1)) == []
    assert await sent.run_until(midnight(engine, 3)) == [midnight(engine, 2), midnight(engine, 3)]


async def test_schedule_runs_start_from_utc(engine, sent):
    """start_from at midnight UTC: in UTC+8 that is 08:00 local, past that day's occurrence."""
    start = datetime.combine(midnight(engine, 2).date(), time(0), timezone.utc)
    await create(engine, start_from=start.isoformat())
    first = 2 if zone(engine).key == "UTC" else 3
    assert await sent.run_until(midnight(engine, first) - timedelta(seconds=1)) == []
    assert await sent.run_until(midnight(engine, 4)) == [midnight(engine, n) for n in range(first, 5)]


async def test_schedule_runs_until(engine, sent):
    """until at local midnight: that midnight's occurrence is the last (inclusive)."""
    await create(engine, until=midnight(engine, 2).isoformat())
    assert await sent.run_until(midnight(engine, 2)) == [midnight(engine, 1), midnight(engine, 2)]
    assert await sent.run_until(midnight(engine, 5)) == [midnight(engine, 1), midnight(engine, 2)]
    params = {"start_before": 0, "until_after": 0}
    [listed] = (await engine.http.get("/scheduled_tasks", params=params)).json()
    assert datetime.fromisoformat(listed["until"]) == midnight(engine, 2)  # kept after its last run


async def test_schedule_runs_until_utc(engine, sent):
    """until given in UTC, at the instant of local midnight: still inclusive."""
    until = midnight(engine, 1).astimezone(timezone.utc)
    await create(engine, until=until.isoformat())
    assert await sent.run_until(midnight(engine, 4)) == [midnight(engine, 1)]


async def test_schedule_runs_except_date(engine, sent):
    """An except date at local midnight: that day has no occurrence, the next one has."""
    await create(engine, except_dates=[midnight(engine, 2).isoformat()])
    assert await sent.run_until(midnight(engine, 3)) == [midnight(engine, 1), midnight(engine, 3)]


async def test_schedule_runs_except_date_utc(engine, sent):
    """An except date of 16:30 UTC: its date in the service's zone is skipped (in UTC+8,
    the next day's)."""
    skipped = datetime.combine(midnight(engine, 1).date(), time(16, 30), timezone.utc)
    await create(engine, except_dates=[skipped.isoformat()])
    local = skipped.astimezone(zone(engine)).date()
    assert local == midnight(engine, 1 if zone(engine).key == "UTC" else 2).date()
    expected = [midnight(engine, n) for n in range(1, 5) if midnight(engine, n).date() != local]
    assert await sent.run_until(midnight(engine, 4)) == expected


async def test_schedule_runs_except_date_multiple(engine, sent):
    skipped = [midnight(engine, 3), datetime.combine(midnight(engine, 1).date(), time(16, 30), timezone.utc)]
    task = await create(engine, except_dates=[moment.isoformat() for moment in skipped])
    local = {moment.astimezone(zone(engine)).date() for moment in skipped}
    assert sorted(task["except_dates"]) == sorted(day.isoformat() for day in local)
    expected = [midnight(engine, n) for n in range(1, 6) if midnight(engine, n).date() not in local]
    assert len(expected) == 3
    assert await sent.run_until(midnight(engine, 5)) == expected


async def test_schedule_delete_before_run(engine, sent):
    """Deleted a minute before its first occurrence, which is already stored: nothing is sent."""
    task = await create(engine)
    assert await sent.run_until(midnight(engine, 1) - timedelta(minutes=1)) == []
    window = {"rule_id": task["id"], "start": T0.isoformat(), "end": midnight(engine, 2).isoformat()}
    first = (await engine.http.get("/tasks", params=window)).json()["items"][0]
    assert first["materialized"] and datetime.fromisoformat(first["scheduled_at"]) == midnight(engine, 1)
    assert (await engine.http.delete(f"/scheduled_tasks/{task['id']}")).status_code == 200
    assert await sent.run_until(midnight(engine, 3)) == []


async def test_schedule_update_before_run(engine, sent):
    """Updated a minute before the next day: the stored 01:00 occurrence is not sent, the new
    bounds, time and except date are (until inclusive)."""
    task = await create(engine, at="01:00")
    assert await sent.run_until(midnight(engine, 1) - timedelta(minutes=1)) == []
    body = {
        "task_request": CLEAN,
        "schedules": [{"period": "day", "at": "00:00"}],
        "start_from": midnight(engine, 3).isoformat(),
        "until": midnight(engine, 5).isoformat(),
        "except_dates": [midnight(engine, 4).isoformat()],
    }
    response = await engine.http.post(f"/scheduled_tasks/{task['id']}/update", json=body)
    assert response.status_code == 200, response.text
    assert await sent.run_until(midnight(engine, 3) - timedelta(seconds=1)) == []
    assert await sent.run_until(midnight(engine, 7)) == [midnight(engine, 3), midnight(engine, 5)]
