"""A rule dateutil would search for minutes without finding anything is refused when saved
(recurrence.rrule_problems): a MINUTELY or SECONDLY line with clock parts that the days x
clock times expansion does not cover, on days too far apart, and any DAILY or finer line
whose days never come."""

import time
from datetime import datetime

from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.recurrence import _days_apart, rrule_problems
from task_scheduler.domain.schedule import parse_schedule


def problems(text: str) -> list[str]:
    return rrule_problems(parse_schedule({"kind": "rrule", "rrule": text}))


def test_sub_daily_rules_on_days_far_apart_are_refused_naming_the_line_at_once() -> None:
    spent = time.process_time()
    for text, apart in (
        ("FREQ=MINUTELY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23", 14609),
        ("FREQ=SECONDLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23", 14609),
        ("FREQ=SECONDLY;BYSETPOS=1;BYMONTHDAY=31;BYHOUR=8", 61),
        ("FREQ=SECONDLY;INTERVAL=30;BYMONTH=3;BYMINUTE=0", 336),
        ("FREQ=MINUTELY;INTERVAL=5;BYYEARDAY=366;BYHOUR=8", 2921),
    ):
        [problem] = problems(f"FREQ=DAILY;BYHOUR=8\n{text}")
        assert problem.startswith(f"line 2 ({text}) has days up to {apart} days apart"), problem
        assert "use FREQ=DAILY with BYHOUR/BYMINUTE/BYSECOND" in problem and "INTERVAL=1" in problem
    assert time.process_time() - spent < 0.5  # each would search for seconds to minutes


def test_a_rule_whose_days_never_come_is_refused_at_once() -> None:
    spent = time.process_time()
    for text in (
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # dateutil walks 400 years to say so
        "FREQ=SECONDLY;INTERVAL=2;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=-30;BYMINUTE=5",
        "FREQ=HOURLY;BYMONTH=1;BYYEARDAY=-1",
    ):
        days = ";".join(
            part for part in text.split(";") if part.split("=")[0] in ("BYMONTH", "BYMONTHDAY", "BYYEARDAY")
        )
        assert problems(text) == [f"line 1 ({text}) never occurs: no date has {days}"]
    assert time.process_time() - spent < 0.5


def test_ordinary_rules_are_accepted() -> None:
    for text in (
        "FREQ=MINUTELY;INTERVAL=15;BYDAY=MO,TU;BYHOUR=8,9",
        "FREQ=HOURLY;INTERVAL=2;BYMONTHDAY=1",
        "FREQ=HOURLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23",  # ~7 µs a day
        "FREQ=SECONDLY;INTERVAL=10;BYMONTHDAY=1,15;BYHOUR=8",  # days at most 31 apart
        "FREQ=MINUTELY;INTERVAL=5;BYMONTH=6;BYMONTHDAY=1;BYHOUR=8",  # yearly: within 2000 days
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23",  # days x clock times
        "FREQ=SECONDLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",  # no clock parts
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # a year a step: dateutil's 400 years are quick
    ):
        assert problems(text) == [], text
    assert rrule_problems(parse_schedule({"kind": "cron", "expression": "0 0 30 2 *"})) == []


def dates_apart_by_dateutil(days: str) -> int | None:
    """The same by a DAILY rule: the widest gap of the cycle 9600-9999, from the last date
    before it on (the gap from 9999 to 10000 is that from 9599 to 9600)."""
    widest, last = None, None
    for value in rrulestr(f"FREQ=DAILY;{days}", dtstart=datetime(9500, 1, 1)):
        if value.year >= 9600 and last is not None:
            widest = max(widest or 0, (value - last).days)
        last = value
    return widest


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.integers(1, 12), max_size=2, unique=True),
    st.lists(st.integers(-31, 31).filter(bool), max_size=2, unique=True),
    st.lists(st.integers(-366, 366).filter(bool), max_size=1),
    st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), max_size=2, unique=True),
)
def test_days_apart_is_what_a_daily_rule_finds(months, monthdays, yeardays, weekdays) -> None:
    parts = [
        f"{name}={','.join(map(str, values))}"
        for name, values in (
            ("BYMONTH", months),
            ("BYMONTHDAY", monthdays),
            ("BYYEARDAY", yeardays),
            ("BYDAY", weekdays),
        )
        if values
    ]
    days = ";".join(parts) or "BYMONTH=1"
    assert _days_apart(days) == dates_apart_by_dateutil(days)
