"""The dashboard's schedules as one recurrence and back: pure, no service."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.domain.schedule import parse_schedule
from task_scheduler.domain.scheduled_tasks import (
    ScheduledTask,
    ScheduledTaskBody,
    ScheduleRejected,
    check_until,
    listed,
    local_date,
    schedule_items,
    scheduled_task,
    to_schedule,
)

UTC = timezone.utc
SGT = ZoneInfo("Asia/Singapore")
NOW = datetime(2026, 1, 5, tzinfo=UTC)
REQUEST = {"category": "clean", "description": {}}


def body(*schedules: dict, **fields) -> ScheduledTaskBody:
    return ScheduledTaskBody(task_request=REQUEST, schedules=list(schedules), **fields)


def shape(*schedules: dict) -> dict:
    document = to_schedule(body(*schedules), SGT, anchor=NOW)
    return {k: v for k, v in document.items() if k not in ("start", "end", "except_dates")}


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        ([{"period": "day", "at": "08:00"}, {"period": "day", "at": "07:00:30"}],
         {"kind": "daily", "every": 1, "times": ["07:00:30", "08:00"]}),
        ([{"period": "day", "every": 3, "at": "08:00"}], {"kind": "daily", "every": 3, "times": ["08:00"]}),
        ([{"period": "monday", "at": "08:00"}, {"period": "friday", "at": "08:00"}],
         {"kind": "weekly", "weekdays": ["mon", "fri"], "times": ["08:00"]}),
        ([{"period": "day", "at": "08:00"}, {"period": "monday", "at": "08:00"}],
         {"kind": "daily", "every": 1, "times": ["08:00"]}),
        ([{"period": "monday", "at": "08:00"}, {"period": "friday", "at": "09:00"}],
         {"kind": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=8;BYMINUTE=0;BYSECOND=0\n"
                                    "FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0"}),
        ([{"period": "hour", "every": 2, "at": ":07"}, {"period": "minute", "at": ":09"},
          {"period": "minute", "at": ":09"}],
         {"kind": "rrule",
          "rrule": "FREQ=HOURLY;INTERVAL=2;BYMINUTE=7;BYSECOND=0\nFREQ=MINUTELY;BYSECOND=9"}),
    ],
)  # fmt: skip
def test_schedules_become_one_recurrence_and_read_back(schedules, expected):
    assert shape(*schedules) == expected
    document = to_schedule(body(*schedules), SGT, anchor=NOW)
    again = to_schedule(
        body(*[i.model_dump() for i in schedule_items(parse_schedule(document))]), SGT, anchor=NOW
    )
    assert again == document


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"period": "day", "at": "24:00"}, "Invalid number of hours"),
        ({"period": "sunday", "at": "7:00"}, "daily job"),
        ({"period": "hour", "at": "60:00"}, "hourly job"),
        ({"period": "minute", "at": "10"}, "minutely job"),
        ({"period": "sunday", "every": 2, "at": "07:00"}, r"\.sunday\(\) jobs is only allowed"),
    ],
)
def test_what_the_schedule_library_refuses(schedule, message):
    with pytest.raises(ScheduleRejected, match=message):
        to_schedule(body(schedule), SGT, anchor=NOW)
    with pytest.raises(ScheduleRejected, match="never going to run"):
        to_schedule(body(), SGT, anchor=NOW)


def test_until_and_except_dates_in_the_service_zone():
    with pytest.raises(ScheduleRejected, match="until a time in the past"):
        check_until(body({"period": "day", "at": "08:00"}, until="2026-01-04T23:59:59Z"), SGT, NOW)
    check_until(body({"period": "day", "at": "08:00"}, until=NOW), SGT, NOW)  # at now: accepted
    assert local_date(datetime(2124, 2, 10, 23, 59, tzinfo=UTC), SGT) == date(2124, 2, 11)
    assert local_date(datetime(2124, 2, 11, 7, 59), SGT) == date(2124, 2, 11)  # naive: local
    document = to_schedule(
        body(
            {"period": "day", "at": "08:00"},
            start_from="2026-02-01T08:00:00",
            except_dates=["2124-02-12T16:00:00Z"],
        ),
        SGT,
        anchor=NOW,
    )
    assert (document["start"], document["except_dates"]) == ("2026-02-01T00:00:00+00:00", ["2124-02-13"])


def test_rules_the_contract_cannot_say_read_as_none():
    for document in (
        {"kind": "weekly", "every": 2, "weekdays": ["mon"], "times": ["08:00"]},
        {"kind": "daily", "times": ["08:00"], "count": 3},
        {"kind": "monthly", "days": [1], "times": ["08:00"]},
        {"kind": "rrule", "rrule": "FREQ=DAILY;BYHOUR=8,9;BYMINUTE=0;BYSECOND=0"},
        {"kind": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=8;BYMINUTE=0;BYSECOND=0"},
        {"kind": "rrule", "rrule": "FREQ=DAILY;BYHOUR=8;BYMINUTE=0"},
    ):
        assert schedule_items(parse_schedule(document)) is None, document


def test_the_list_filter_is_inclusive_at_both_bounds():
    task = ScheduledTask(
        id=1, task_request=REQUEST, created_by="a", schedules=[], last_ran=None,
        start_from=NOW, until=datetime(2026, 2, 1, tzinfo=UTC), except_dates=[],
    )  # fmt: skip
    assert listed(task, NOW, datetime(2026, 2, 1, tzinfo=UTC))
    assert not listed(task, datetime(2026, 1, 4, 23, 59, tzinfo=UTC), NOW)
    assert not listed(task, NOW, datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))


def test_labels_not_sent_read_back_as_null():
    """A rule keeps no labels as []; the api-server answers null for them, and given ones as given."""
    schedule = parse_schedule({"kind": "daily", "times": ["08:00"], "start": NOW.isoformat()})
    for labels, shown in (([], None), (["site=hq"], ["site=hq"])):
        task = scheduled_task(
            rule_id=1, timezone="UTC", schedule=schedule, request={**REQUEST, "labels": labels},
            metadata={"scheduled_task": {}}, created_by=None, zone=ZoneInfo("UTC"), last_ran=None,
        )  # fmt: skip
        assert task is not None and task.task_request.labels == shown
