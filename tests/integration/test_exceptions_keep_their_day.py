"""A one-off change of an occurrence belongs to its day: editing the series keeps it there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_api_contract import CLEAN, create, tasks

START = "2026-01-05T00:00:00"
DAY = {"start": "2026-01-08T00:00:00Z", "end": "2026-01-09T00:00:00Z"}

# kind: (schedule before, schedule after, the Jan 8 occurrence before, the same one after)
KINDS: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    "once": (
        {"kind": "once", "at": "2026-01-08T08:00:00"},
        {"kind": "once", "at": "2026-01-08T09:00:00"},
        "08:00",
        "09:00",
    ),
    "interval": (
        {"kind": "interval", "every": 6, "unit": "hours", "start": START},
        {"kind": "interval", "every": 6, "unit": "hours", "start": "2026-01-05T01:00:00"},
        "06:00",
        "07:00",
    ),
    "daily": (
        {"kind": "daily", "times": ["08:00"], "start": START},
        {"kind": "daily", "times": ["09:00"], "start": START},
        "08:00",
        "09:00",
    ),
    "weekly": (
        {"kind": "weekly", "weekdays": ["thu"], "times": ["08:00"], "start": START},
        {"kind": "weekly", "weekdays": ["thu"], "times": ["09:00"], "start": START},
        "08:00",
        "09:00",
    ),
    "monthly": (
        {"kind": "monthly", "days": [8], "times": ["08:00"], "start": START},
        {"kind": "monthly", "days": [8], "times": ["09:00"], "start": START},
        "08:00",
        "09:00",
    ),
    "monthly_weekday": (
        {"kind": "monthly_weekday", "weekday": "thu", "nth": 2, "times": ["08:00"], "start": START},
        {"kind": "monthly_weekday", "weekday": "thu", "nth": 2, "times": ["09:00"], "start": START},
        "08:00",
        "09:00",
    ),
    "cron": (
        {"kind": "cron", "expression": "0 8 * * *", "start": START},
        {"kind": "cron", "expression": "0 9 * * *", "start": START},
        "08:00",
        "09:00",
    ),
    "rrule": (
        {"kind": "rrule", "rrule": "FREQ=DAILY;BYHOUR=8;BYMINUTE=0;BYSECOND=0", "start": START},
        {"kind": "rrule", "rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "start": START},
        "08:00",
        "09:00",
    ),
}


def tid(rule_id: int, hhmm: str, day: str = "20260108") -> str:
    return f"{rule_id}-{day}T{hhmm.replace(':', '')}00Z"


async def put(service, rule_id: int, schedule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": "lobby", "schedule": schedule, "task": CLEAN, **extra}
    response = await service.http.put(f"/rules/{rule_id}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def day(service, rule_id: int, **window: str) -> list[dict[str, Any]]:
    return (await tasks(service, rule_id=rule_id, **(window or DAY)))["items"]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_skipped_occurrence_stays_skipped_when_the_time_of_day_changes(service, kind):
    before, after, old_time, new_time = KINDS[kind]
    rule = await create(service, schedule=before)
    assert (await service.http.delete(f"/tasks/{tid(rule['id'], old_time)}")).status_code == 204

    replaced = await put(service, rule["id"], after)

    assert replaced["dropped_exceptions"] == []
    listed = await day(service, rule["id"])
    skipped = [(t["id"], t["edited"]) for t in listed if t["status"] == "skipped"]
    assert skipped == [(tid(rule["id"], new_time), True)]
    assert tid(rule["id"], old_time) not in {t["id"] for t in listed}
    assert len({t["scheduled_at"] for t in listed}) == len(listed)  # nothing twice in one slot
    assert (await service.http.get(f"/tasks/{tid(rule['id'], old_time)}")).status_code == 404


async def test_every_kind_of_exception_follows_its_day(service):
    rule = await create(service, schedule=KINDS["daily"][0])
    rid = rule["id"]
    request = {"category": "clean", "description": {"zone": "hall"}}
    assert (await service.http.delete(f"/tasks/{tid(rid, '08:00')}")).status_code == 204
    edits = {
        "20260109": {"enabled": False},
        "20260110": {"scheduled_at": "2026-01-10T12:30:00Z"},
        "20260111": {"request": request},
    }
    for date, patch in edits.items():
        response = await service.http.patch(f"/tasks/{tid(rid, '08:00', date)}", json=patch)
        assert response.status_code == 200, response.text

    replaced = await put(service, rid, KINDS["daily"][1])

    assert replaced["dropped_exceptions"] == []
    window = {"start": "2026-01-08T00:00:00Z", "end": "2026-01-12T00:00:00Z"}
    listed = {t["id"]: t for t in await day(service, rid, **window)}
    assert set(listed) == {tid(rid, "09:00", date) for date in ("20260108", *edits)}
    assert listed[tid(rid, "09:00")]["status"] == "skipped"
    assert listed[tid(rid, "09:00", "20260109")]["enabled"] is False
    moved = listed[tid(rid, "09:00", "20260110")]
    assert moved["scheduled_at"] == "2026-01-10T12:30:00Z" and moved["original_at"] == "2026-01-10T09:00:00Z"
    own = listed[tid(rid, "09:00", "20260111")]
    assert own["request"]["description"] == {"zone": "hall"}
    assert (own["scheduled_at"], own["enabled"], own["status"]) == ("2026-01-11T09:00:00Z", True, "scheduled")


async def test_an_exception_whose_day_is_gone_is_dropped_and_named(service):
    rule = await create(service, schedule=KINDS["daily"][0])
    rid = rule["id"]
    assert (await service.http.delete(f"/tasks/{tid(rid, '08:00')}")).status_code == 204  # a Thursday
    disabled = await service.http.patch(f"/tasks/{tid(rid, '08:00', '20260112')}", json={"enabled": False})
    assert disabled.status_code == 200

    mondays = {"kind": "weekly", "weekdays": ["mon"], "times": ["09:00"], "start": START}
    replaced = await put(service, rid, mondays)

    assert [(d["id"], d["status"]) for d in replaced["dropped_exceptions"]] == [
        (tid(rid, "08:00"), "skipped")
    ]
    assert await day(service, rid) == []
    [monday] = await day(service, rid, start="2026-01-12T00:00:00Z", end="2026-01-13T00:00:00Z")
    assert (monday["id"], monday["enabled"]) == (tid(rid, "09:00", "20260112"), False)


async def test_the_slot_within_the_day_is_kept(service):
    twice = {"kind": "daily", "times": ["08:00", "20:00"], "start": START}
    rule = await create(service, schedule=twice)
    rid = rule["id"]
    assert (await service.http.delete(f"/tasks/{tid(rid, '20:00')}")).status_code == 204

    await put(service, rid, {**twice, "times": ["09:00", "21:00"]})
    statuses = {t["id"]: t["status"] for t in await day(service, rid)}
    assert statuses == {tid(rid, "09:00"): "scheduled", tid(rid, "21:00"): "skipped"}

    replaced = await put(service, rid, {**twice, "times": ["10:00"]})
    assert [d["id"] for d in replaced["dropped_exceptions"]] == [tid(rid, "21:00")]
    assert [(t["id"], t["status"]) for t in await day(service, rid)] == [(tid(rid, "10:00"), "scheduled")]


async def test_the_day_is_the_rules_local_date_across_a_zone_change(service):
    rule = await create(service, schedule=KINDS["daily"][0])
    rid = rule["id"]
    assert (await service.http.delete(f"/tasks/{tid(rid, '08:00')}")).status_code == 204

    # 08:00 in Singapore is 00:00 UTC on the same date.
    replaced = await put(service, rid, KINDS["daily"][0], timezone="Asia/Singapore")

    assert replaced["dropped_exceptions"] == []
    listed = {t["id"]: t["status"] for t in await day(service, rid)}
    assert listed == {tid(rid, "00:00"): "skipped"}
