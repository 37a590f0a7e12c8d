"""Properties of Recurrence over generated schedules, zones and windows.

Calendar kinds are also checked against a brute-force oracle that walks the local dates of the
window by hand, independent of dateutil and of the restart points used to skip ahead.
"""

import calendar
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import WEEKDAYS, parse_cron, parse_schedule

UTC = timezone.utc
ZONES = [
    ZoneInfo(name)
    for name in (
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Australia/Sydney",
        "Pacific/Apia",  # skipped 2011-12-30 entirely
        "America/Santiago",  # changes at midnight
        "Asia/Kolkata",
        "UTC",
    )
]
CREATED = datetime(2020, 1, 1, tzinfo=UTC)
FAST = settings(max_examples=100, deadline=None)

times = st.lists(
    st.builds(time, st.sampled_from([0, 1, 2, 3, 7, 12, 23]), st.sampled_from([0, 15, 30, 45, 59])),
    min_size=1,
    max_size=4,
).map(lambda values: [value.strftime("%H:%M") for value in values])
cron_expressions = st.builds(
    " ".join,
    st.tuples(
        st.sampled_from(["0", "30", "*/20", "0,45", "15-45/15"]),
        st.sampled_from(["*", "2", "1-3", "7,19", "*/6"]),
        st.sampled_from(["*", "13", "1,15", "29-31", "*/2", "31"]),
        st.sampled_from(["*", "2", "jan,jul", "*/3", "feb,apr"]),
        st.sampled_from(["*", "fri", "mon-fri", "0", "7", "*/3"]),
    ),
)
rrules = st.sampled_from(
    [
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3;BYHOUR=2,14;BYMINUTE=30",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU",
        "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=16;BYMINUTE=0",
        "FREQ=MONTHLY;INTERVAL=5;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=2",
        "FREQ=YEARLY;INTERVAL=2",
        "FREQ=YEARLY;BYWEEKNO=1,-1;BYDAY=MO",
        "FREQ=HOURLY;INTERVAL=7;BYMINUTE=10",
        "FREQ=MINUTELY;INTERVAL=45;BYHOUR=1,2,9",
        "FREQ=WEEKLY;BYDAY=MO,FR;BYSETPOS=1",
    ]
)
calendar_kinds = st.one_of(
    st.fixed_dictionaries({"kind": st.just("daily"), "every": st.integers(1, 10), "times": times}),
    st.fixed_dictionaries(
        {
            "kind": st.just("weekly"),
            "every": st.integers(1, 4),
            "weekdays": st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=10),
            "times": times,
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("monthly"),
            "every": st.integers(1, 13),
            "days": st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=4),
            "times": times,
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("monthly_weekday"),
            "every": st.integers(1, 4),
            "weekday": st.sampled_from(WEEKDAYS),
            "nth": st.sampled_from([1, 2, 3, 4, 5, -1]),
            "times": times,
        }
    ),
    st.fixed_dictionaries({"kind": st.just("cron"), "expression": cron_expressions}),
)
other_kinds = st.one_of(
    st.fixed_dictionaries({"kind": st.just("rrule"), "rrule": rrules}),
    st.fixed_dictionaries(
        {"kind": st.just("interval"), "every": st.integers(1800, 90000), "unit": st.just("seconds")}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("interval"), "every": st.integers(30, 3000), "unit": st.just("minutes")}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("interval"), "every": st.integers(1, 500), "unit": st.just("hours")}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("once"), "at": st.datetimes(datetime(2010, 1, 1), datetime(2032, 1, 1))}
    ),
)
any_kind = st.one_of(calendar_kinds, other_kinds)
starts = st.datetimes(datetime(2010, 1, 1), datetime(2030, 1, 1)).map(
    lambda value: value.replace(microsecond=0)
)


Case = tuple[Recurrence, dict, ZoneInfo, datetime, datetime]


@st.composite
def cases(
    draw: st.DrawFn,
    kinds: st.SearchStrategy = any_kind,
    limits: tuple[str, ...] = ("none", "end", "count"),
    reach_days: int = 1500,
) -> Case:
    """A schedule, its zone, and a window (after, until) from a little before start to reach_days after."""
    tz = draw(st.sampled_from(ZONES))
    start = draw(starts)
    schedule = dict(draw(kinds))
    if schedule["kind"] == "once":
        schedule["at"] = schedule["at"].replace(microsecond=0).isoformat()
        start = min(start, datetime.fromisoformat(schedule["at"]))
    schedule["start"] = start.isoformat()
    limit = draw(st.sampled_from(limits))
    if limit == "end":
        schedule["end"] = (start + timedelta(minutes=draw(st.integers(0, 3000 * 24 * 60)))).isoformat()
    elif limit == "count":
        schedule["count"] = draw(st.integers(1, 30))
    near = st.integers(-3, 400).map(lambda days: start.date() + timedelta(days=days))
    schedule["except_dates"] = [day.isoformat() for day in draw(st.lists(near, max_size=5))]
    extra = st.builds(datetime.combine, near, st.sampled_from([time(2, 30), time(12), time(1, 45)]))
    schedule["extra_dates"] = [value.isoformat() for value in draw(st.lists(extra, max_size=3))]
    days = draw(st.one_of(st.integers(-5, 60), st.integers(60, reach_days)))
    after = start.replace(tzinfo=UTC) + timedelta(days=days, seconds=draw(st.integers(0, 86399)))
    length = draw(st.sampled_from([40 * 86400, 7 * 86400, 86400, 3600])) + draw(st.integers(0, 86400))
    until = after + timedelta(seconds=length)
    return Recurrence(parse_schedule(schedule), tz, CREATED), schedule, tz, after, until


def instant(tz: ZoneInfo, value: str | datetime) -> datetime:
    wall = datetime.fromisoformat(value) if isinstance(value, str) else value
    return wall.replace(tzinfo=tz).astimezone(UTC)


def months_since(start: date, day: date) -> int:
    return (day.year - start.year) * 12 + day.month - start.month


def matches(schedule: dict, start: date, day: date) -> bool:
    """Whether a calendar kind fires on a local date, worked out by hand."""
    if day < start:
        return False
    length = calendar.monthrange(day.year, day.month)[1]
    every = schedule.get("every", 1)
    match schedule["kind"]:
        case "daily":
            return (day - start).days % every == 0
        case "weekly":
            weeks = (
                (day - timedelta(days=day.weekday())) - (start - timedelta(days=start.weekday()))
            ).days // 7
            return weeks % every == 0 and WEEKDAYS[day.weekday()] in schedule["weekdays"]
        case "monthly":
            return months_since(start, day) % every == 0 and bool(
                {day.day, day.day - length - 1} & set(schedule["days"])
            )
        case "monthly_weekday":
            nth = schedule["nth"]
            position = day.day + 7 > length if nth == -1 else (day.day - 1) // 7 + 1 == nth
            return (
                months_since(start, day) % every == 0
                and WEEKDAYS[day.weekday()] == schedule["weekday"]
                and position
            )
        case "cron":
            cron = parse_cron(schedule["expression"])
            by_day, by_weekday = day.day in cron.days, day.weekday() in cron.weekdays
            either = cron.days_restricted and cron.weekdays_restricted
            return day.month in cron.months and (by_day or by_weekday if either else by_day and by_weekday)
    raise AssertionError(schedule["kind"])


def day_times(schedule: dict) -> list[time]:
    if schedule["kind"] == "cron":
        cron = parse_cron(schedule["expression"])
        return [time(hour, minute) for hour in cron.hours for minute in cron.minutes]
    return [time.fromisoformat(value) for value in schedule["times"]]


def oracle(schedule: dict, tz: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Brute force over every local date of the window, for calendar kinds without `count`."""
    start_wall = datetime.fromisoformat(schedule["start"])
    start = instant(tz, start_wall)
    end = instant(tz, schedule["end"]) if "end" in schedule else None
    skipped = {date.fromisoformat(value) for value in schedule["except_dates"]}
    found = set()
    day = after.astimezone(tz).date() - timedelta(days=2)
    while day <= until.astimezone(tz).date() + timedelta(days=2):
        if matches(schedule, start_wall.date(), day):
            found.update(instant(tz, datetime.combine(day, at)) for at in day_times(schedule))
        day += timedelta(days=1)
    found.update(instant(tz, value) for value in schedule["extra_dates"])
    return sorted(
        value
        for value in found
        if after < value <= until
        and start <= value
        and (end is None or value <= end)
        and value.astimezone(tz).date() not in skipped
    )


@FAST
@given(cases())
def test_between_is_sorted_unique_bounded_and_skips_except_dates(case: Case) -> None:
    rule, schedule, tz, after, until = case
    found = list(rule.between(after, until))
    assert found == sorted(set(found))
    assert all(value.tzinfo is UTC and value.microsecond == 0 for value in found)
    assert all(after < value <= until for value in found)
    start = instant(tz, schedule["start"])
    assert all(start <= value for value in found)
    if "end" in schedule:
        assert all(value <= instant(tz, schedule["end"]) for value in found)
    skipped = {date.fromisoformat(value) for value in schedule["except_dates"]}
    assert not any(value.astimezone(tz).date() in skipped for value in found)
    assert all(rule.contains(value) for value in found)


@FAST
@given(cases(), st.floats(0, 1))
def test_split_windows_add_up(case: Case, split: float) -> None:
    rule, _, _, after, until = case
    middle = (after + (until - after) * split).replace(microsecond=0)
    assert list(rule.between(after, until)) == list(rule.between(after, middle)) + list(
        rule.between(middle, until)
    )
    inclusive = list(rule.between(after, until, inclusive=True))
    assert inclusive == ([after] if rule.contains(after) else []) + list(rule.between(after, until))


@FAST
@given(cases(reach_days=400))
def test_a_window_far_from_start_matches_walking_from_start(case: Case) -> None:
    rule, schedule, tz, after, until = case
    from_start = instant(tz, schedule["start"]) - timedelta(days=2)
    walked = [value for value in rule.between(from_start, until) if value > after]
    assert list(rule.between(after, until)) == walked


@FAST
@given(cases(calendar_kinds, limits=("none", "end")))
def test_calendar_kinds_match_a_brute_force_oracle(case: Case) -> None:
    rule, schedule, tz, after, until = case
    assert list(rule.between(after, until)) == oracle(schedule, tz, after, until)


@FAST
@given(cases(), st.integers(0, 8))
def test_next_after_agrees_with_between(case: Case, n: int) -> None:
    rule, _, _, after, _ = case
    upcoming = rule.next_after(after, n)
    assert len(upcoming) <= n
    if upcoming:
        assert list(rule.between(after, upcoming[-1])) == upcoming
    if len(upcoming) < n:  # nothing more for years: the next 40 days are empty too
        assert list(rule.between(upcoming[-1] if upcoming else after, after + timedelta(days=40))) == []


@FAST
@given(cases())
def test_count_limits_own_occurrences_and_first_is_the_earliest(case: Case) -> None:
    rule, schedule, tz, _, _ = case
    extras = {instant(tz, value) for value in schedule["extra_dates"]}
    count = schedule.get("count", 5)
    upcoming = rule.next_after(instant(tz, schedule["start"]) - timedelta(seconds=1), count + len(extras) + 1)
    assert rule.first() == (upcoming[0] if upcoming else None)
    if "count" in schedule:
        assert len([value for value in upcoming if value not in extras]) <= count
