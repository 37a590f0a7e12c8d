"""Validation of schedule payloads: what each kind accepts, how it is normalised, what it rejects."""

from datetime import date, datetime, timezone

import pytest
from pydantic import ValidationError

from task_scheduler.domain.schedule import (
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    MonthlySchedule,
    MonthlyWeekdaySchedule,
    OnceSchedule,
    RRuleSchedule,
    WeeklySchedule,
    parse_cron,
    parse_rrule,
    parse_schedule,
    schedule_adapter,
)

GOOD = [
    ({"kind": "once", "at": "2026-12-24T18:00:00"}, OnceSchedule),
    ({"kind": "interval", "every": 90, "unit": "seconds"}, IntervalSchedule),
    ({"kind": "interval", "every": 8784, "unit": "hours"}, IntervalSchedule),
    ({"kind": "daily", "every": 1, "times": ["07:00", "19:30"]}, DailySchedule),
    ({"kind": "weekly", "every": 2, "weekdays": ["mon", "fri"], "times": ["07:00"]}, WeeklySchedule),
    ({"kind": "monthly", "every": 1, "days": [1, 15, -1], "times": ["07:00"]}, MonthlySchedule),
    (
        {"kind": "monthly_weekday", "every": 1, "weekday": "tue", "nth": 2, "times": ["10:00"]},
        MonthlyWeekdaySchedule,
    ),
    ({"kind": "monthly_weekday", "weekday": "fri", "nth": -1, "times": ["10:00"]}, MonthlyWeekdaySchedule),
    ({"kind": "cron", "expression": "*/15 8-18 * * mon-fri"}, CronSchedule),
    ({"kind": "cron", "expression": "@weekly"}, CronSchedule),
    ({"kind": "rrule", "rrule": "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=16;BYMINUTE=0"}, RRuleSchedule),
    ({"kind": "rrule", "rrule": "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU"}, RRuleSchedule),
    ({"kind": "rrule", "rrule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"}, RRuleSchedule),
    (
        {
            "kind": "daily",
            "times": ["07:00"],
            "start": "2026-01-01T00:00:00",
            "end": "2026-12-31T23:59:59",
            "except_dates": ["2026-12-25"],
            "extra_dates": ["2026-12-27T09:00:00", "2026-12-28T09:00:00Z"],
        },
        DailySchedule,
    ),
]


def errors(payload: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        parse_schedule(payload)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def assert_error(payload: dict, loc: tuple, text: str) -> None:
    found = errors(payload)
    assert any(error_loc[: len(loc)] == loc and text in msg for error_loc, msg in found), found


@pytest.mark.parametrize(("payload", "model"), GOOD)
def test_valid_payloads_parse_to_their_kind(payload: dict, model: type) -> None:
    schedule = parse_schedule(payload)
    assert type(schedule) is model
    assert parse_schedule(schedule.model_dump(mode="json")) == schedule


def test_lists_are_unique_sorted_and_normalised() -> None:
    weekly = parse_schedule(
        {
            "kind": "weekly",
            "weekdays": ["FRI", "mon", " Fri "],
            "times": ["19:30", "07:00:00", "07:00", "06:59:30"],
        }
    )
    assert weekly.weekdays == ["mon", "fri"]
    assert weekly.times == ["06:59:30", "07:00", "19:30"]
    assert weekly.every == 1
    monthly = parse_schedule({"kind": "monthly", "days": [-1, 15, 1, -2, 15], "times": ["07:00"]})
    assert monthly.days == [1, 15, -2, -1]


def test_datetimes_are_truncated_to_milliseconds_and_instants_stored_in_utc() -> None:
    schedule = parse_schedule(
        {
            "kind": "daily",
            "times": ["07:00"],
            "start": "2026-03-01T10:00:00.750999+01:00",
            "extra_dates": [
                "2026-03-05T09:00:00.5",
                "2026-03-04T09:00:00Z",
                "2026-03-04T10:00:00.0001+01:00",
            ],
            "except_dates": ["2026-03-03", "2026-03-02", "2026-03-03"],
        }
    )
    assert schedule.start == datetime(2026, 3, 1, 9, 0, 0, 750_000, tzinfo=timezone.utc)
    assert schedule.extra_dates == [
        datetime(2026, 3, 5, 9, 0, 0, 500_000),
        datetime(2026, 3, 4, 9, tzinfo=timezone.utc),
    ]
    assert schedule.except_dates == [date(2026, 3, 2), date(2026, 3, 3)]


def test_rrule_text_is_normalised() -> None:
    schedule = parse_schedule({"kind": "rrule", "rrule": " rrule:freq=monthly; byday=-1fr "})
    assert schedule.rrule == "FREQ=MONTHLY;BYDAY=-1FR"
    assert parse_rrule(schedule.lines()[0]) == {"FREQ": "MONTHLY", "BYDAY": "-1FR"}


def test_adapter_is_the_schedule_union() -> None:
    assert isinstance(
        schedule_adapter.validate_json('{"kind": "once", "at": "2026-12-24T18:00:00"}'), OnceSchedule
    )


@pytest.mark.parametrize(
    ("payload", "loc", "text"),
    [
        ({"at": "2026-12-24T18:00:00"}, (), "Unable to extract tag using discriminator 'kind'"),
        ({"kind": "yearly"}, (), "does not match any of the expected tags"),
        ({"kind": "once", "at": "2026-12-24T18:00:00", "repeat": 2}, ("once", "repeat"), "Extra inputs"),
        ({"kind": "once"}, ("once", "at"), "Field required"),
        ({"kind": "once", "at": "Christmas"}, ("once", "at"), "datetime"),
        ({"kind": "once", "at": "1800-01-01T00:00:00"}, ("once", "at"), "year must be between"),
        (
            {"kind": "once", "at": "2026-12-24T18:00:00", "start": "2026-12-25T00:00:00"},
            ("once",),
            "`at` is before `start`",
        ),
        (
            {"kind": "interval", "every": 0, "unit": "seconds"},
            ("interval", "every"),
            "greater than or equal to 1",
        ),
        (
            {"kind": "interval", "every": 5, "unit": "days"},
            ("interval", "unit"),
            "'seconds', 'minutes' or 'hours'",
        ),
        ({"kind": "interval", "every": 5}, ("interval", "unit"), "Field required"),
        (
            {"kind": "interval", "every": 8785, "unit": "hours"},
            ("interval", "every"),
            "maximum interval of 366 days",
        ),
        ({"kind": "daily", "times": ["25:00"]}, ("daily", "times", 0), "'25:00' is not a time of day"),
        ({"kind": "daily", "times": ["07:00", "7:00"]}, ("daily", "times", 1), "use HH:MM or HH:MM:SS"),
        ({"kind": "daily", "times": ["07:60"]}, ("daily", "times", 0), "not a time of day"),
        ({"kind": "daily", "times": []}, ("daily", "times"), "at least 1 item"),
        ({"kind": "daily"}, ("daily", "times"), "Field required"),
        ({"kind": "daily", "every": 0, "times": ["07:00"]}, ("daily", "every"), "greater than or equal to 1"),
        (
            {"kind": "daily", "every": 5000, "times": ["07:00"]},
            ("daily", "every"),
            "less than or equal to 3660",
        ),
        ({"kind": "weekly", "weekdays": ["funday"], "times": ["07:00"]}, ("weekly", "weekdays", 0), "'mon'"),
        ({"kind": "weekly", "weekdays": [], "times": ["07:00"]}, ("weekly", "weekdays"), "at least 1 item"),
        (
            {"kind": "monthly", "days": [0], "times": ["07:00"]},
            ("monthly", "days", 0),
            "0 is not a day of the month",
        ),
        (
            {"kind": "monthly", "days": [32], "times": ["07:00"]},
            ("monthly", "days", 0),
            "less than or equal to 31",
        ),
        (
            {"kind": "monthly", "days": [-32], "times": ["07:00"]},
            ("monthly", "days", 0),
            "greater than or equal",
        ),
        (
            {"kind": "monthly_weekday", "weekday": "tue", "nth": 6, "times": ["07:00"]},
            ("monthly_weekday", "nth"),
            "Input should be 1, 2, 3, 4, 5 or -1",
        ),
        (
            {"kind": "monthly_weekday", "weekday": "tue", "nth": -2, "times": ["07:00"]},
            ("monthly_weekday", "nth"),
            "Input should be",
        ),
        (
            {"kind": "monthly_weekday", "weekday": "tuesday", "nth": 1, "times": ["07:00"]},
            ("monthly_weekday", "weekday"),
            "'tue'",
        ),
        (
            {"kind": "cron", "expression": "61 * * * *"},
            ("cron", "expression"),
            "minute field: 61 is outside 0-59",
        ),
        ({"kind": "cron", "expression": "* * *"}, ("cron", "expression"), "has 5 fields"),
        ({"kind": "cron", "expression": "@reboot"}, ("cron", "expression"), "unknown cron macro"),
        (
            {"kind": "cron", "expression": "*/0 * * * *"},
            ("cron", "expression"),
            "step '0' must be a positive",
        ),
        ({"kind": "cron", "expression": "5-1 * * * *"}, ("cron", "expression"), "runs backwards"),
        (
            {"kind": "cron", "expression": "0 0 * foo *"},
            ("cron", "expression"),
            "'foo' is not a number or name",
        ),
        (
            {"kind": "cron", "expression": "0 0 0 * *"},
            ("cron", "expression"),
            "day-of-month field: 0 is outside",
        ),
        (
            {"kind": "cron", "expression": "0 0 * * 8"},
            ("cron", "expression"),
            "day-of-week field: 8 is outside",
        ),
        ({"kind": "cron", "expression": "0 0 1,,2 * *"}, ("cron", "expression"), "'' is not a number"),
        (
            {"kind": "rrule", "rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"},
            ("rrule", "rrule"),
            "no DTSTART",
        ),
        ({"kind": "rrule", "rrule": "FREQ=DAILY;COUNT=3"}, ("rrule", "rrule"), "use the schedule's `count`"),
        ({"kind": "rrule", "rrule": "FREQ=DAILY;UNTIL=20261231T000000Z"}, ("rrule", "rrule"), "`end`"),
        ({"kind": "rrule", "rrule": "FREQ=FORTNIGHTLY"}, ("rrule", "rrule"), "FREQ must be one of"),
        ({"kind": "rrule", "rrule": "BYDAY=MO"}, ("rrule", "rrule"), "FREQ must be one of"),
        ({"kind": "rrule", "rrule": "FREQ=DAILY;FOO=1"}, ("rrule", "rrule"), "unknown RRULE part 'FOO'"),
        ({"kind": "rrule", "rrule": "FREQ=DAILY;FREQ=WEEKLY"}, ("rrule", "rrule"), "FREQ is given twice"),
        ({"kind": "rrule", "rrule": "FREQ=DAILY;INTERVAL=0"}, ("rrule", "rrule"), "INTERVAL must be"),
        (
            {"kind": "rrule", "rrule": "FREQ=WEEKLY;BYMONTHDAY=1"},
            ("rrule", "rrule"),
            "cannot be used with FREQ",
        ),
        (
            {"kind": "rrule", "rrule": "FREQ=DAILY;BYDAY=1MO"},
            ("rrule", "rrule"),
            "needs FREQ=MONTHLY or YEARLY",
        ),
        ({"kind": "rrule", "rrule": "FREQ=MONTHLY;BYMONTHDAY=0"}, ("rrule", "rrule"), "BYMONTHDAY: '0'"),
        ({"kind": "rrule", "rrule": "FREQ=YEARLY;BYMONTH=13"}, ("rrule", "rrule"), "BYMONTH: '13'"),
        ({"kind": "rrule", "rrule": "FREQ=MONTHLY;BYDAY=XX"}, ("rrule", "rrule"), "BYDAY: 'XX'"),
        ({"kind": "rrule", "rrule": "FREQ=MONTHLY;BYSETPOS=1"}, ("rrule", "rrule"), "BYSETPOS needs"),
        (
            {"kind": "rrule", "rrule": "FREQ=YEARLY;BYEASTER=0"},
            ("rrule", "rrule"),
            "unknown RRULE part 'BYEASTER'",
        ),
        (
            {"kind": "daily", "times": ["07:00"], "end": "2027-01-01T00:00:00", "count": 3},
            ("daily",),
            "either `end` or `count`",
        ),
        (
            {
                "kind": "daily",
                "times": ["07:00"],
                "start": "2027-01-01T00:00:00",
                "end": "2026-01-01T00:00:00",
            },
            ("daily",),
            "`end` is before `start`",
        ),
        ({"kind": "daily", "times": ["07:00"], "count": 0}, ("daily", "count"), "greater than or equal to 1"),
        (
            {"kind": "daily", "times": ["07:00"], "count": 100_001},
            ("daily", "count"),
            "less than or equal to 100000",
        ),
        (
            {"kind": "daily", "times": ["07:00"], "except_dates": ["soon"]},
            ("daily", "except_dates", 0),
            "date",
        ),
        (
            {
                "kind": "daily",
                "times": ["07:00"],
                "extra_dates": ["2026-01-01T00:00:00", "1850-01-01T00:00:00"],
            },
            ("daily", "extra_dates", 1),
            "year must be between 1900 and 9000",
        ),
        ({"kind": "cron", "expression": "0 0 ² * *"}, ("cron", "expression"), "'²' is not a number"),
        (
            {"kind": "daily", "times": ["07:00"], "extra_dates": ["2026-01-01T00:00:00"] * 1001},
            ("daily", "extra_dates"),
            "at most 1000 items",
        ),
    ],
)
def test_invalid_payloads_name_the_field(payload: dict, loc: tuple, text: str) -> None:
    assert_error(payload, loc, text)


def test_cron_fields() -> None:
    cron = parse_cron("*/15 8-18 * JAN,jul mon-fri")
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == tuple(range(8, 19))
    assert cron.months == (1, 7)
    assert cron.weekdays == (0, 1, 2, 3, 4)
    assert (cron.days_restricted, cron.weekdays_restricted) == (False, True)


def test_cron_sunday_is_0_or_7_and_steps_apply_to_ranges() -> None:
    assert parse_cron("0 0 * * 7").weekdays == parse_cron("0 0 * * sun").weekdays == (6,)
    assert parse_cron("0 0 * * 5-7").weekdays == (4, 5, 6)
    assert parse_cron("10-50/20 0 * * *").minutes == (10, 30, 50)
    assert parse_cron("5/20 0 * * *").minutes == (5, 25, 45)
    assert parse_cron("@daily") == parse_cron("0 0 * * *")
    assert parse_cron("@annually") == parse_cron("0 0 1 1 *")


def test_cron_day_fields_count_as_restricted_unless_they_start_with_a_star() -> None:
    both = parse_cron("0 9 13 * fri")
    assert (both.days_restricted, both.weekdays_restricted) == (True, True)
    stepped = parse_cron("0 9 */2 * fri")
    assert (stepped.days_restricted, stepped.weekdays_restricted) == (False, True)


def test_several_rrule_lines_make_a_set() -> None:
    schedule = parse_schedule(
        {"kind": "rrule", "rrule": "rrule:freq=weekly;byday=mo\n\n FREQ=DAILY ; BYHOUR=9"}
    )
    assert schedule.lines() == ["FREQ=WEEKLY;BYDAY=MO", "FREQ=DAILY;BYHOUR=9"]
    for bad, reason in (("\n \n", "at least one"), ("FREQ=DAILY\nBYDAY=MO", "FREQ must be one of")):
        with pytest.raises(ValidationError, match=reason):
            parse_schedule({"kind": "rrule", "rrule": bad})
    with pytest.raises(ValidationError, match="at most 100 rules"):
        parse_schedule({"kind": "rrule", "rrule": "\n".join(["FREQ=DAILY"] * 101)})
