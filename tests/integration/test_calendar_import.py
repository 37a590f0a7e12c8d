"""POST /rules/import: each VEVENT of an .ics file becomes a rule, or a 422 says why not."""

from __future__ import annotations

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}


def ics(*events: str) -> str:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:{i}@test\r\n{e.strip()}\r\nEND:VEVENT\r\n" for i, e in enumerate(events)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"


WEEKLY = """
SUMMARY:Lobby clean
DTSTART;TZID=Europe/Berlin:20260105T070000
RRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260601T000000Z
EXDATE;TZID=Europe/Berlin:20260112T070000
RDATE;TZID=Europe/Berlin:20260110T093000
"""
ONCE = """
SUMMARY:Inspection
DTSTART:20260301T120000Z
"""


async def post(service, calendar: str):
    return await service.http.post("/rules/import", json={"calendar": calendar, "task": CLEAN})


async def test_each_event_becomes_a_rule_that_runs_when_the_event_does(service):
    answer = await post(service, ics(WEEKLY, ONCE))
    assert answer.status_code == 201, answer.text
    weekly, once = answer.json()
    assert weekly["name"] == "Lobby clean" and weekly["timezone"] == "Europe/Berlin"
    assert weekly["schedule"]["kind"] == "rrule" and weekly["schedule"]["rrule"] == "FREQ=WEEKLY;BYDAY=MO,TH"
    assert weekly["schedule"]["except_dates"] == ["2026-01-12"]
    assert once["schedule"]["kind"] == "once" and once["timezone"] == "UTC"
    preview = await service.http.get(f"/rules/{weekly['id']}/preview", params={"count": 4})
    assert [o["local"] for o in preview.json()] == [
        "2026-01-08T07:00:00+01:00",
        "2026-01-10T09:30:00+01:00",  # the RDATE
        "2026-01-15T07:00:00+01:00",  # 2026-01-12 is an EXDATE
        "2026-01-19T07:00:00+01:00",
    ]
    last = await service.http.get(f"/rules/{weekly['id']}/preview", params={"count": 100})
    assert last.json()[-1]["local"] == "2026-05-28T07:00:00+02:00"  # UNTIL


async def test_what_a_rule_cannot_say_is_a_422_naming_the_event_and_property(service):
    cases = {
        "RECURRENCE-ID": "SUMMARY:x\nDTSTART:20260301T120000Z\nRECURRENCE-ID:20260301T120000Z",
        "DTSTART": "SUMMARY:all day\nDTSTART;VALUE=DATE:20260301",
        "SUMMARY": "DTSTART:20260301T120000Z",
        "EXDATE": "SUMMARY:h\nDTSTART:20260301T120000Z\nRRULE:FREQ=HOURLY\nEXDATE:20260302T120000Z",
    }
    for prop, event in cases.items():
        answer = await post(service, ics(ONCE, event.replace("\n", "\r\n")))
        assert answer.status_code == 422, (prop, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", "calendar", "events", 1, prop], answer.text
    assert (await service.http.get("/rules")).json()["total"] == 0  # all or none


async def test_a_bad_rrule_or_task_is_named_where_it_is(service):
    bad_rule = await post(
        service, ics("SUMMARY:x\r\nDTSTART:20260301T120000Z\r\nRRULE:FREQ=WEEKLY;BYEASTER=1")
    )
    assert bad_rule.status_code == 422
    assert bad_rule.json()["detail"][0]["loc"][:5] == ["body", "calendar", "events", 0, "schedule"]
    bad_task = await service.http.post("/rules/import", json={"calendar": ics(ONCE), "task": {"kind": "rmf"}})
    assert bad_task.status_code == 422
    assert bad_task.json()["detail"][0]["loc"][:2] == ["body", "task"]
    assert (
        await service.http.post("/rules/import", json={"calendar": "nope", "task": CLEAN})
    ).status_code == 422
