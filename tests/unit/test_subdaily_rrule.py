"""HOURLY, MINUTELY and SECONDLY rules with BYHOUR/BYMINUTE/BYSECOND and INTERVAL=1 are
expanded day by day (recurrence._on_clock): the same instants as plain dateutil, without
dateutil's ~10 ms of stepping through each day its day parts refuse."""

import time as cpu_clock
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import parse_schedule

UTC = timezone.utc
ZONES = [ZoneInfo(name) for name in ("America/New_York", "Australia/Lord_Howe", "Europe/Berlin", "UTC")]


def _part(name: str, values: list[int]) -> str:
    return f"{name}={','.join(map(str, values))}" if values else ""


def _numbers(low: int, high: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(low, high).filter(bool), max_size=3, unique=True)


rules = st.builds(
    lambda freq, months, monthdays, weekdays, hours, minutes, seconds: ";".join(
        filter(
            None,
            [
                f"FREQ={freq}",
                _part("BYMONTH", months),
                _part("BYMONTHDAY", monthdays),
                f"BYDAY={','.join(weekdays)}" if weekdays else "",
                _part("BYHOUR", hours),
                _part("BYMINUTE", minutes),
                _part("BYSECOND", seconds),
            ],
        )
    ),
    st.sampled_from(["HOURLY", "MINUTELY", "SECONDLY"]),
    st.lists(st.integers(1, 12), max_size=2, unique=True).filter(lambda months: len(months) != 1),
    _numbers(-31, 31),
    st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), max_size=3, unique=True),
    st.lists(st.sampled_from([0, 1, 2, 3, 22, 23]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from([0, 1, 30, 59]), max_size=2, unique=True),
    st.lists(st.sampled_from([0, 30, 59]), max_size=2, unique=True),
)


def dateutil_instants(text: str, tz: ZoneInfo, start: datetime, lo: datetime, hi: datetime) -> list[datetime]:
    """The documented semantics on plain dateutil: wall-clock times from the start's wall time,
    each at its fold=0 instant, kept from the start's instant on, once each."""
    anchor = start.astimezone(tz).replace(tzinfo=None)
    walls = rrulestr(text, dtstart=anchor).between(
        anchor - timedelta(days=2), hi.astimezone(tz).replace(tzinfo=None) + timedelta(days=2), inc=True
    )
    instants = {wall.replace(tzinfo=tz).astimezone(UTC) for wall in walls}
    return sorted(t for t in instants if t >= start and lo < t <= hi)


@settings(max_examples=80, deadline=None)
@given(
    rules,
    st.sampled_from(ZONES),
    st.datetimes(datetime(2025, 1, 1), datetime(2026, 12, 31)).map(lambda t: t.replace(microsecond=0)),
    st.integers(0, 40 * 3600),
    st.integers(0, 30 * 3600),
)
def test_same_instants_as_dateutil(text: str, tz: ZoneInfo, start: datetime, skip: int, length: int) -> None:
    start = start.replace(tzinfo=UTC)
    lo = start + timedelta(seconds=skip) - timedelta(seconds=1)
    hi = lo + timedelta(seconds=length)
    rule = Recurrence(parse_schedule({"kind": "rrule", "rrule": text, "start": start.isoformat()}), tz, start)
    assert list(rule.between(lo, hi)) == dateutil_instants(text, tz, start, lo, hi)


@settings(max_examples=30, deadline=None)
@given(rules, st.sampled_from(ZONES), st.integers(1, 5))
def test_count_ends_at_the_same_occurrence(text: str, tz: ZoneInfo, count: int) -> None:
    start = datetime(2026, 3, 7, 20, tzinfo=UTC)  # a day before New York springs forward
    schedule = {"kind": "rrule", "rrule": text, "start": start.isoformat(), "count": count}
    found = Recurrence(parse_schedule(schedule), tz, start).next_after(start - timedelta(seconds=1), 10)
    expected = dateutil_instants(text, tz, start, start - timedelta(seconds=1), start + timedelta(days=3))
    if len(expected) >= count:
        assert found == expected[:count]


def test_rare_days_with_time_filters_answer_at_once() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    spent = cpu_clock.process_time()
    for text, first in (
        ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23;BYMINUTE=59;BYSECOND=59", "2044-02-29"),
        ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=28;BYHOUR=23;BYMINUTE=59;BYSECOND=59", "2026-02-28"),
        ("FREQ=SECONDLY;BYYEARDAY=366;BYDAY=SU;BYHOUR=23", "2028-12-31"),
        ("FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30;BYMINUTE=5", None),
    ):
        rule = Recurrence(parse_schedule({"kind": "rrule", "rrule": text}), UTC, start)
        found = rule.first()
        assert (found and found.date().isoformat()) == first
        assert len(rule.next_after(start, 5)) == (5 if first else 0)
    assert cpu_clock.process_time() - spent < 1  # plain dateutil: minutes
