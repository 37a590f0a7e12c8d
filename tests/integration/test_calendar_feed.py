"""GET /calendar.ics read back as a calendar app would (icalendar + recurring-ical-events):
a year of Europe/Berlin, both DST changes included, expands to exactly the occurrences
GET /tasks lists that will run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import recurring_ical_events
from icalendar import Calendar

from task_scheduler.domain.auth import Role
from tests.integration.conftest import T0

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
YEAR = timedelta(days=365)
BERLIN = "Europe/Berlin"
SCHEDULES = {
    # 02:30 does not exist on 2026-03-29 and happens twice on 2026-10-25.
    "night": {"kind": "daily", "times": ["02:30", "22:00"], "except_dates": ["2026-02-14"]},
    "mornings": {"kind": "weekly", "every": 2, "weekdays": ["mon", "thu"], "times": ["07:00"]},
    "month ends": {"kind": "monthly", "days": [15, -1], "times": ["09:00"], "count": 12},
    "second tuesdays": {"kind": "monthly_weekday", "nth": 2, "weekday": "tue", "times": ["10:00"]},
    "every seven hours": {"kind": "interval", "every": 7, "unit": "hours", "start": "2026-01-05T13:00:00"},
    "cron": {"kind": "cron", "expression": "30 12 * * 1-5", "end": "2026-06-30T00:00:00"},
    "rrule": {"kind": "rrule", "rrule": "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;BYHOUR=16;BYMINUTE=0"},
    "once": {"kind": "once", "at": "2026-07-01T08:00:00"},
    "with extras": {
        "kind": "weekly",
        "weekdays": ["sat"],
        "times": ["11:00"],
        "extra_dates": ["2026-04-01T11:00:00", "2026-08-05T06:15:00"],
        "end": "2026-09-01T00:00:00",
    },
}


async def all_tasks(service, start: datetime, end: datetime) -> list[dict]:
    items: list[dict] = []
    params = {"start": start.isoformat(), "end": end.isoformat(), "limit": 1000}
    while True:
        page = await service.http.get("/tasks", params=params)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        if page.json()["next"] is None:
            return items
        params["cursor"] = page.json()["next"]


def expand(body: bytes, start: datetime, end: datetime) -> list[datetime]:
    calendar = Calendar.from_ical(body)
    instants = [
        e["DTSTART"].dt.astimezone(timezone.utc)
        for e in recurring_ical_events.of(calendar).between(start, end)
    ]
    return sorted(i for i in instants if start <= i < end)


def exdates(event) -> list[datetime]:
    value = event.get("EXDATE", [])
    return sorted(
        d.dt.astimezone(timezone.utc)
        for one in (value if isinstance(value, list) else [value])
        for d in one.dts
    )


def will_run(task: dict) -> bool:
    return task["status"] not in ("skipped", "cancelled") and task["enabled"]


async def test_a_year_of_the_feed_expands_to_what_get_tasks_lists(service):
    ids = {}
    for name, schedule in SCHEDULES.items():
        answer = await service.http.post(
            "/rules", json={"name": name, "timezone": BERLIN, "schedule": schedule, "task": CLEAN}
        )
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["id"]
    await service.expand()
    start, end = T0, T0 + YEAR
    listed = await all_tasks(service, start, end)
    mornings = [t for t in listed if t["rule_id"] == ids["mornings"]]
    skipped, moved, disabled = mornings[3], mornings[5], mornings[20]  # stored and computed ones
    assert (await service.http.delete(f"/tasks/{skipped['id']}")).status_code == 204
    new_time = datetime.fromisoformat(moved["scheduled_at"]) + timedelta(hours=3)
    patched = await service.http.patch(f"/tasks/{moved['id']}", json={"scheduled_at": new_time.isoformat()})
    assert patched.status_code == 200, patched.text
    assert (await service.http.patch(f"/tasks/{disabled['id']}", json={"enabled": False})).status_code == 200

    feed = await service.http.get(
        "/calendar.ics", params={"start": start.isoformat(), "end": end.isoformat()}
    )
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    expected = sorted(
        datetime.fromisoformat(t["scheduled_at"]) for t in await all_tasks(service, start, end) if will_run(t)
    )
    assert expand(feed.content, start, end) == expected

    calendar = Calendar.from_ical(feed.content)
    events = calendar.walk("VEVENT")
    assert any(tz["TZID"] == BERLIN for tz in calendar.walk("VTIMEZONE"))
    series = {str(e["UID"]): e for e in events if "RRULE" in e}
    # One series per time of day of each calendar kind, and one for the interval.
    assert set(series) == {
        f"rule-{ids['night']}-0230",
        f"rule-{ids['night']}-2200",
        f"rule-{ids['mornings']}-0700",
        f"rule-{ids['month ends']}-0900",
        f"rule-{ids['second tuesdays']}-1000",
        f"rule-{ids['with extras']}-1100",
        f"rule-{ids['every seven hours']}",
    }
    morning = series[f"rule-{ids['mornings']}-0700"]
    assert morning["DTSTART"].params["TZID"] == BERLIN
    assert exdates(morning) == [datetime.fromisoformat(t["scheduled_at"]) for t in (skipped, disabled)]
    overrides = [e for e in events if "RECURRENCE-ID" in e]
    assert [str(e["UID"]) for e in overrides] == [f"rule-{ids['mornings']}-0700"]
    assert overrides[0]["DTSTART"].dt == new_time


async def test_the_feed_opens_with_a_feed_token_that_opens_nothing_else(secured):
    assert (await secured.http.get("/calendar.ics")).status_code == 401
    minted = await secured.http.post("/auth/feed-token", headers=secured.auth(Role.viewer))
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    assert minted.json()["url"] == f"/calendar.ics?token={token}"
    feed = await secured.http.get(minted.json()["url"])
    assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR")
    # Valid for the feed's length of life, not a login's.
    expires = datetime.fromisoformat(minted.json()["expires_at"])
    assert expires - secured.clock.now() == timedelta(days=365)
    # Not a bearer token: the API refuses it.
    assert (await secured.http.get("/rules", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    # Nor does a login token open the feed as ?token=.
    login_token = secured.tokens[Role.viewer]
    assert (await secured.http.get("/calendar.ics", params={"token": login_token})).status_code == 401
    # A bearer token in the header works, as for every route.
    assert (await secured.http.get("/calendar.ics", headers=secured.auth(Role.viewer))).status_code == 200
    # The user's feed closes when the user goes.
    assert (
        await secured.http.delete("/auth/users/viewer", headers=secured.auth(Role.admin))
    ).status_code == 204
    assert (await secured.http.get(minted.json()["url"])).status_code == 401


async def test_no_feed_token_is_needed_with_authentication_off(service):
    assert (await service.http.post("/auth/feed-token")).status_code == 409
    assert (await service.http.get("/calendar.ics")).status_code == 200
