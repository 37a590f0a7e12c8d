"""When a schedule fires: pure occurrence maths that never reads the clock.

Every argument and result is an aware datetime; results are UTC, whole milliseconds,
ascending and unique. Wall-clock kinds fire at whole seconds; `once`, `interval` and extra dates
keep the milliseconds of their `at` or `start`.

Wall-clock kinds (daily, weekly, monthly, monthly_weekday, cron, rrule) are computed by dateutil's
rrule on naive wall-clock times in the rule's zone, then mapped to instants with zoneinfo's fold=0:
- a time that does not exist on a spring-forward day runs at the offset in force before the gap,
  i.e. as far past the gap as it was into it: 02:30 in New York on 2026-03-08 runs at 03:30 EDT;
- a time that happens twice on a fall-back day runs once, the first time: 01:30 in New York on
  2026-11-01 runs at 01:30 EDT, not again at 01:30 EST;
- occurrences that land on the same instant (02:30 and 03:30 that spring day) are emitted once.
- the start is compared by instant: a gap time pushed past midnight onto the start's day (23:30
  on a night whose gap runs 23:00-24:00) runs when that instant is at or after the start.
`interval` counts real elapsed time, start + k * every, so DST never stretches or shrinks it.
An `rrule` with FREQ=HOURLY or finer steps through wall-clock time, like every calendar kind.

`count` limits the rule's own occurrences from `start` (see the schedule module): the first
`count` distinct instants are found once, and the series then ends at the last of them.

Cost: a query restarts dateutil at an aligned period just before its window (for `every` N days,
the latest day at most the window's start whose distance from the start date is a multiple of N;
weeks, months and years alike), so it costs what the window holds, not its distance from start.
An HOURLY, MINUTELY or SECONDLY rrule with BYHOUR, BYMINUTE or BYSECOND (INTERVAL=1, no BYSETPOS)
is expanded as its days times its clock times, as dateutil would step through each refused day.
A MINUTELY or SECONDLY rrule with clock parts and INTERVAL>1 or BYSETPOS is refused when saved
if its days can be further apart than dateutil searches in about a second (rrule_problems), and
so is any DAILY or finer rrule whose day parts never match.
Searches are bounded: nothing looks more than HORIZON (200 years) ahead, so a rule with nothing
in the 200 years after its start never fires, next_after() looks at most 200 years ahead, and
`count` is honoured within 200 years of `start`. Instants after the year 9800 are never produced.
Each step found checks the context's CPU budget (domain.cpu): what dateutil spends between two
finds is not interrupted.
"""

import heapq
import zoneinfo
from bisect import bisect_left, bisect_right
from calendar import isleap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone
from functools import cache, lru_cache
from itertools import islice, pairwise, product
from typing import Generic, TypeVar

from dateutil.rrule import (
    DAILY,
    HOURLY,
    MINUTELY,
    MONTHLY,
    SECONDLY,
    WEEKLY,
    YEARLY,
    rrule,
    rrulebase,
    rruleset,
    rrulestr,
    weekday,
)

from task_scheduler.domain import cpu
from task_scheduler.domain.schedule import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    RRULE_FREQUENCIES,
    RRULE_WEEKDAYS,
    WEEKDAYS,
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    MonthlySchedule,
    MonthlyWeekdaySchedule,
    OnceSchedule,
    RRuleSchedule,
    Schedule,
    WeeklySchedule,
    parse_rrule,
    whole_millis,
)

UTC = timezone.utc
HORIZON = timedelta(days=73_049)  # 200 Gregorian years
_LATEST = datetime(9800, 1, 1, tzinfo=UTC)
_CYCLE_YEARS = 400  # the Gregorian calendar, weekdays included, repeats every 400 years
_NEAR = timedelta(hours=25)  # covers any one UTC offset change, the largest being a whole day
_MIDNIGHT = time()

# Naive wall-clock datetimes in [lo, hi], ascending.
_WallSource = Callable[[datetime, datetime], Iterator[datetime]]
_T = TypeVar("_T")


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(name: object) -> zoneinfo.ZoneInfo:
    """The IANA zone called `name`; ValueError for anything else."""
    if not isinstance(name, str) or name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'")
    return zoneinfo.ZoneInfo(name)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _horizon_end(instant: datetime) -> datetime:
    return min(instant, _LATEST - HORIZON) + HORIZON


def _shift_years(value: datetime, years: int) -> datetime:
    return value.replace(year=value.year + years) if years else value


def _unique(values: Iterable[datetime]) -> Iterator[datetime]:
    last = None
    for value in values:
        if value != last:
            last = value
            yield value


def _period(freq: int, wkst: int, value: datetime) -> int:
    """Index of the dateutil period (year, month, week starting on wkst, day, ...) holding value."""
    if freq == YEARLY:
        return value.year
    if freq == MONTHLY:
        return value.year * 12 + value.month - 1
    day = value.toordinal()
    if freq == WEEKLY:
        return (day - 1 - wkst) // 7  # ordinal 1 is a Monday
    seconds = ((day * 24 + value.hour) * 60 + value.minute) * 60 + value.second
    return {DAILY: day, HOURLY: seconds // 3600, MINUTELY: seconds // 60, SECONDLY: seconds}[freq]


def _period_start(freq: int, wkst: int, index: int) -> datetime:
    if freq == YEARLY:
        return datetime(index, 1, 1)
    if freq == MONTHLY:
        year, month = divmod(index, 12)
        return datetime(year, month + 1, 1)
    if freq == WEEKLY:
        return datetime.fromordinal(index * 7 + 1 + wkst)
    if freq == DAILY:
        return datetime.fromordinal(index)
    day, seconds = divmod(index * {HOURLY: 3600, MINUTELY: 60, SECONDLY: 1}[freq], 86400)
    return datetime.fromordinal(day) + timedelta(seconds=seconds)


@dataclass(frozen=True)
class _Periodic:
    """dateutil rule(s) whose only anchor is dtstart, so a search can restart at any visited period.

    `build(dtstart, until)` makes the rrule or rruleset with every value dateutil would otherwise
    take from dtstart (time of day, day of month, weekday) given explicitly.
    """

    freq: int
    interval: int
    wkst: int
    anchor: datetime
    build: Callable[[datetime, datetime], rrulebase]

    def restart(self, lo: datetime) -> datetime:
        """Start of the latest period the rule visits (anchor's + k * interval) at or before lo.

        Never the anchor itself: a wall-clock time in a spring-forward gap runs past the gap,
        so a day before the start's date (the Saturday 23:30 of a gap at 23:00, for a start at
        Sunday 00:00) can still fire after the start. The caller drops values before the start
        by instant. A period before the anchor's is visited only when every period is.
        """
        first = _period(self.freq, self.wkst, self.anchor)
        target = _period(self.freq, self.wkst, lo)
        visited = target - (target - first) % self.interval
        if visited < first and self.interval > 1:
            visited = first
        return _period_start(self.freq, self.wkst, visited)

    def between(self, lo: datetime, hi: datetime) -> Iterator[datetime]:
        """Values in [lo, hi], ascending, at a cost of the periods from lo to hi (+400 years if none)."""
        # dateutil checks `until` against results only, so a rule that stops matching would run
        # on to the year 9999. Running it whole 400-year cycles later changes no date or weekday
        # and puts that year less than 400 years after hi.
        years = _CYCLE_YEARS * ((MAXYEAR - hi.year) // _CYCLE_YEARS)
        cpu.check()
        try:
            found = iter(self.build(_shift_years(self.restart(lo), years), _shift_years(hi, years)))
            for value in found:
                cpu.check()
                value = _shift_years(value, -years)
                if value >= lo:
                    yield value
        except ValueError:
            return  # dateutil found that INTERVAL and the BYxxx parts never meet again


def _at_times(days: _Periodic, times: Sequence[time]) -> _WallSource:
    def walls(lo: datetime, hi: datetime) -> Iterator[datetime]:
        for day in days.between(datetime.combine(lo.date(), _MIDNIGHT), hi):
            skip = bisect_left(times, lo.time()) if day.date() == lo.date() else 0
            for at in times[skip:]:
                value = datetime.combine(day.date(), at)
                if value > hi:
                    return
                yield value

    return walls


def _day_rules(
    freq: int, interval: int, anchor: datetime, variants: Sequence[dict[str, object]]
) -> _Periodic:
    """Days (at midnight) matching any of the variants' BYxxx parts; weeks start on Monday."""

    def build(dtstart: datetime, until: datetime) -> rrulebase:
        rules = [
            rrule(
                freq,
                dtstart=dtstart,
                until=until,
                interval=interval,
                wkst=0,
                byhour=0,
                byminute=0,
                bysecond=0,
                **parts,
            )
            for parts in variants
        ]
        if len(rules) == 1:
            return rules[0]
        union = rruleset()
        for rule in rules:
            union.rrule(rule)
        return union

    return _Periodic(freq, interval, 0, datetime.combine(anchor.date(), _MIDNIGHT), build)


def _cron(schedule: CronSchedule, anchor: datetime) -> _WallSource:
    cron = schedule.parsed()
    days: dict[str, object] = {"bymonth": cron.months, "bymonthday": cron.days}
    weekdays: dict[str, object] = {"bymonth": cron.months, "byweekday": cron.weekdays}
    if cron.days_restricted and cron.weekdays_restricted:
        variants = [days, weekdays]  # classic cron: either day field may match
    elif len(cron.weekdays) < 7:
        variants = [days | weekdays]
    else:
        variants = [days]
    times = [time(hour, minute) for hour, minute in product(cron.hours, cron.minutes)]
    return _at_times(_day_rules(MONTHLY, 1, anchor, variants), times)


def _rrules(schedule: RRuleSchedule, anchor: datetime) -> _WallSource | None:
    """The union of the set's rules; None when none of them can fire."""
    sources = [source for line in schedule.lines() if (source := _rrule(line, anchor)) is not None]
    if len(sources) <= 1:
        return sources[0] if sources else None

    def walls(lo: datetime, hi: datetime) -> Iterator[datetime]:
        return _unique(heapq.merge(*(source(lo, hi) for source in sources)))

    return walls


def _rrule(text: str, anchor: datetime) -> _WallSource | None:
    parts = parse_rrule(text)
    freq = RRULE_FREQUENCIES.index(parts["FREQ"])
    wkst = RRULE_WEEKDAYS.index(parts.get("WKST", "MO"))
    interval = int(parts.get("INTERVAL", "1"))
    if _by_day_and_clock(parts):
        return _on_clock(_day_filter(parts, anchor), *_clock(parts, freq, anchor))
    try:
        parsed = rrulestr(text, dtstart=anchor)
    except ValueError:
        return None  # INTERVAL and the BYxxx parts never meet from this start
    # Pin what dateutil would derive from dtstart, so that restarting elsewhere changes nothing.
    pinned: dict[str, object] = {}
    for name, level, value in (("BYHOUR", HOURLY, anchor.hour), ("BYMINUTE", MINUTELY, anchor.minute)):
        if name not in parts and freq < level:
            pinned[name.lower()] = value
    if "BYSECOND" not in parts and freq < SECONDLY:
        pinned["bysecond"] = anchor.second
    if not parts.keys() & {"BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"}:
        if freq in (YEARLY, MONTHLY):
            pinned["bymonthday"] = anchor.day
        if freq == YEARLY and "BYMONTH" not in parts:
            pinned["bymonth"] = anchor.month
        if freq == WEEKLY:
            pinned["byweekday"] = anchor.weekday()

    def build(dtstart: datetime, until: datetime) -> rrulebase:
        return parsed.replace(dtstart=dtstart, until=until, wkst=wkst, **pinned)

    rule = _Periodic(freq, interval, wkst, anchor, build)
    return rule.between


# An HOURLY, MINUTELY or SECONDLY rule with these parts makes dateutil step through every
# hour, minute or second of each day its day parts (_DAY_PARTS) refuse: about 10 ms a day.
_CLOCK_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
_DAY_PARTS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYDAY")


def _by_day_and_clock(parts: dict[str, str]) -> bool:
    """Whether a rule is expanded as its days times its clock times (_on_clock)."""
    return (
        RRULE_FREQUENCIES.index(parts["FREQ"]) >= HOURLY
        and int(parts.get("INTERVAL", "1")) == 1
        and "BYSETPOS" not in parts
        and bool(parts.keys() & set(_CLOCK_PARTS))
    )


def _clock(parts: dict[str, str], freq: int, anchor: datetime) -> tuple[list[int], list[int], list[int]]:
    """Hours, minutes and seconds a sub-daily rule with INTERVAL=1 fires at on each of its days:
    as given, else all of those its frequency steps through, else the start's."""

    def values(name: str, level: int, size: int, start: int) -> list[int]:
        if name in parts:
            return sorted({int(value) for value in parts[name].split(",")})
        return list(range(size)) if freq >= level else [start]

    return (
        values("BYHOUR", HOURLY, 24, anchor.hour),
        values("BYMINUTE", MINUTELY, 60, anchor.minute),
        values("BYSECOND", SECONDLY, 60, anchor.second),
    )


def _day_filter(parts: dict[str, str], anchor: datetime) -> _Periodic:
    """Every day (at midnight) that a rule's day parts let through, restartable at any day.

    dateutil steps past a refused day in ~2.5 µs as DAILY, ten times less as YEARLY; YEARLY
    keeps the same days unless none of BYMONTHDAY, BYYEARDAY, BYDAY is given (it would then
    take the day of the month from dtstart), and then at most 11 months are refused in a row.
    """
    freq = "YEARLY" if parts.keys() & {"BYMONTHDAY", "BYYEARDAY", "BYDAY"} else "DAILY"
    days = [f"{name}={parts[name]}" for name in _DAY_PARTS if name in parts]
    rule = rrulestr(";".join([f"FREQ={freq};BYHOUR=0;BYMINUTE=0;BYSECOND=0", *days]), dtstart=anchor)

    def build(dtstart: datetime, until: datetime) -> rrulebase:
        return rule.replace(dtstart=dtstart, until=until)

    return _Periodic(DAILY, 1, 0, datetime.combine(anchor.date(), _MIDNIGHT), build)


def _on_clock(days: _Periodic, hours: list[int], minutes: list[int], seconds: list[int]) -> _WallSource:
    """Each of `days` at every hours x minutes x seconds: the same values, in the same order,
    as the HOURLY, MINUTELY or SECONDLY rule with INTERVAL=1 they come from, whose periods
    are all visited. Built lazily, as a day may hold 86400 of them."""

    def walls(lo: datetime, hi: datetime) -> Iterator[datetime]:
        for day in days.between(datetime.combine(lo.date(), _MIDNIGHT), hi):
            on_lo = day.date() == lo.date()
            for hour in hours[bisect_left(hours, lo.hour) if on_lo else 0 :]:
                on_lo_hour = on_lo and hour == lo.hour
                for minute in minutes[bisect_left(minutes, lo.minute) if on_lo_hour else 0 :]:
                    on_lo_minute = on_lo_hour and minute == lo.minute
                    for second in seconds[bisect_left(seconds, lo.second) if on_lo_minute else 0 :]:
                        value = day.replace(hour=hour, minute=minute, second=second)
                        if value > hi:
                            return
                        if value >= lo:
                            yield value

    return walls


# How far apart the days of a MINUTELY or SECONDLY rule with clock parts that _on_clock does
# not expand (INTERVAL>1 or BYSETPOS) may be: dateutil spends up to ~0.45 ms (MINUTELY) or
# ~25 ms (SECONDLY) on each day in between and finds nothing there, so no CPU budget can stop
# it: at most about a second. An HOURLY one spends ~7 µs a day, a second for 400 years.
_DAYS_APART = {MINUTELY: 2000, SECONDLY: 31}
_CYCLE_DAYS = 146_097  # days in _CYCLE_YEARS


def rrule_problems(schedule: Schedule) -> list[str]:
    """What is wrong with each line of an rrule schedule (nothing for other kinds): its days
    never come, or dateutil could search for minutes between two of its occurrences.
    Checked when a rule is saved, not when a stored one is read."""
    if not isinstance(schedule, RRuleSchedule):
        return []
    found = []
    for number, text in enumerate(schedule.lines(), 1):
        problem = _line_problem(parse_rrule(text))
        if problem is not None:
            found.append(f"line {number} ({text}) {problem}")
    return found


def _line_problem(parts: dict[str, str]) -> str | None:
    freq = RRULE_FREQUENCIES.index(parts["FREQ"])
    days = ";".join(f"{name}={parts[name]}" for name in _DAY_PARTS if name in parts)
    if freq < DAILY or not days:
        return None  # dateutil steps a week, month or year at a time, or every day matches
    apart = _days_apart(days)
    if apart is None:
        return f"never occurs: no date has {days}"
    limit = _DAYS_APART.get(freq)
    if limit is None or apart <= limit or _by_day_and_clock(parts) or not parts.keys() & set(_CLOCK_PARTS):
        return None
    return (
        f"has days up to {apart} days apart, and FREQ={parts['FREQ']} with INTERVAL>1 or BYSETPOS"
        f" and BYHOUR/BYMINUTE/BYSECOND allows {limit}: finding its next occurrence could take"
        " minutes; use FREQ=DAILY with BYHOUR/BYMINUTE/BYSECOND listing the times, or INTERVAL=1"
        " without BYSETPOS"
    )


@lru_cache(maxsize=1024)
def _days_apart(days: str) -> int | None:
    """The most days from one date the day parts let through to the next, over the Gregorian
    cycle and so for ever; None when no date gets through. dateutil lists the dates of one
    year of each kind (leap or not, weekday of January 1st: 14 kinds) with a YEARLY rule:
    the same dates as DAILY once BYMONTHDAY, BYYEARDAY or BYDAY is given (see _day_filter),
    so BYMONTH alone gets every day of the month. At most ~10 ms for dates decades apart."""
    if "BYMONTHDAY" not in days and "BYYEARDAY" not in days and "BYDAY" not in days:
        days += ";BYMONTHDAY=" + ",".join(map(str, range(1, 32)))
    rule = rrulestr(f"FREQ=YEARLY;BYHOUR=0;BYMINUTE=0;BYSECOND=0;{days}", dtstart=datetime(2000, 1, 1))
    # The last cycle before MAXYEAR, where dateutil looking for a next date gives up soonest.
    cycle = range(MAXYEAR + 1 - _CYCLE_YEARS, MAXYEAR + 1)
    if next(iter(rule.replace(dtstart=datetime(cycle[0], 1, 1))), None) is None:
        return None
    kinds: dict[tuple[bool, int], tuple[int, int, int] | None] = {}  # first, last, widest gap
    first = last = None
    widest = 0
    for year in cycle:
        new_year = datetime(year, 1, 1)
        kind = (isleap(year), new_year.weekday())
        if kind not in kinds:
            cpu.check()
            offsets = []
            for value in rule.replace(dtstart=new_year):  # up to the next year with a date
                if value.year != year:
                    break
                offsets.append((value - new_year).days)
            inner = max((b - a for a, b in pairwise(offsets)), default=0)
            kinds[kind] = (offsets[0], offsets[-1], inner) if offsets else None
        if (year_days := kinds[kind]) is None:
            continue
        day = new_year.toordinal()
        if last is None:
            first = day + year_days[0]
        else:
            widest = max(widest, day + year_days[0] - last)
        widest = max(widest, year_days[2])
        last = day + year_days[1]
    if first is None or last is None:
        return None
    return max(widest, first + _CYCLE_DAYS - last)


def _wall_source(schedule: Schedule, anchor: datetime) -> _WallSource | None:
    """Wall-clock occurrences of a calendar kind; None when it can never fire."""
    match schedule:
        case DailySchedule():
            days = _day_rules(DAILY, schedule.every, anchor, [{}])
        case WeeklySchedule():
            weekdays = [WEEKDAYS.index(name) for name in schedule.weekdays]
            days = _day_rules(WEEKLY, schedule.every, anchor, [{"byweekday": weekdays}])
        case MonthlySchedule():
            days = _day_rules(MONTHLY, schedule.every, anchor, [{"bymonthday": schedule.days}])
        case MonthlyWeekdaySchedule():
            nth = weekday(WEEKDAYS.index(schedule.weekday), schedule.nth)
            days = _day_rules(MONTHLY, schedule.every, anchor, [{"byweekday": nth}])
        case CronSchedule():
            return _cron(schedule, anchor)
        case RRuleSchedule():
            return _rrules(schedule, anchor)
        case _:
            raise TypeError(f"not a calendar schedule: {schedule.kind}")
    return _at_times(days, [time.fromisoformat(value) for value in schedule.times])


class _memo(Generic[_T]):
    """A property computed once per instance, without the lock Python 3.11's cached_property
    takes for every instance at once: a search of decades in one thread (an API request's)
    would hold up the event loop's first() of any rule (other requests, the expander) until it
    ended."""

    def __init__(self, compute: Callable[["Recurrence"], _T]) -> None:
        self._compute = compute
        self._name = compute.__name__

    def __get__(self, instance: "Recurrence", owner: type) -> _T:
        value = instance.__dict__[self._name] = self._compute(instance)
        return value


class Recurrence:
    """The occurrences of one schedule in one zone. See the module docstring for DST and cost."""

    def __init__(self, schedule: Schedule, tz: zoneinfo.ZoneInfo, default_start: datetime) -> None:
        """`default_start` (aware) stands in for `schedule.start` when the schedule has none."""
        self._schedule = schedule
        self._tz = tz
        start = (
            schedule.start if schedule.start is not None else _require_aware(default_start, "default_start")
        )
        start = whole_millis(start)
        if not EARLIEST_YEAR <= start.year <= LATEST_YEAR:
            raise ValueError(f"start must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        self._start = self._instant(start)
        self._anchor = start if start.tzinfo is None else start.astimezone(tz).replace(tzinfo=None)
        self._end = None if schedule.end is None else self._instant(schedule.end)
        self._except = frozenset(schedule.except_dates)
        self._extras = sorted({self._instant(value) for value in schedule.extra_dates})
        self._walls: _WallSource | None = None
        if not isinstance(schedule, (OnceSchedule, IntervalSchedule)):
            self._walls = _wall_source(schedule, self._anchor.replace(microsecond=0))

    def between(self, after: datetime, until: datetime, *, inclusive: bool = False) -> Iterator[datetime]:
        """Aware UTC datetimes t with after < t <= until (after <= t if inclusive), ascending, unique."""
        after = _require_aware(after, "after")
        until = _require_aware(until, "until")
        if self.first() is None:
            return iter(())
        return self._stream(after, inclusive, until)

    def next_after(self, after: datetime, n: int) -> list[datetime]:
        """The next n occurrences (UTC) strictly after `after`, looking at most HORIZON ahead."""
        after = _require_aware(after, "after")
        if n < 0:
            raise ValueError(f"n must be at least 0, got {n}")
        if self.first() is None:
            return []
        return list(islice(self._stream(after, False, None), n))

    def contains(self, instant: datetime) -> bool:
        """Whether this instant is an occurrence."""
        instant = _require_aware(instant, "instant")
        if self.first() is None:
            return False
        return next(self._stream(instant, True, instant), None) == instant

    def on_day(self, day: date) -> list[datetime]:
        """Every occurrence whose local date in the rule's zone is `day`, ascending: the day
        and slot an edited occurrence keeps through an edit of its series (follow_slots)."""
        midnight = datetime.combine(day, _MIDNIGHT).replace(tzinfo=self._tz).astimezone(UTC)
        found = self.between(midnight - _NEAR, midnight + 2 * _NEAR, inclusive=True)
        return [value for value in found if value.astimezone(self._tz).date() == day]

    def first(self) -> datetime | None:
        """The earliest occurrence at all; None if the rule never fires (within HORIZON of start)."""
        return self._first

    @_memo
    def _first(self) -> datetime | None:
        return next(self._stream(self._start, True, None), None)

    @_memo
    def _own_end(self) -> datetime | None:
        """Last instant the rule itself may use: `end`, or its count-th occurrence."""
        count = self._schedule.count
        if count is None:
            return self._end
        horizon = _horizon_end(self._start)
        counted = list(islice(self._own(self._start, True, horizon), count))
        return counted[-1] if len(counted) == count else horizon

    def _instant(self, value: datetime) -> datetime:
        """Naive means wall-clock time in the rule's zone (fold=0); aware is already an instant."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self._tz)
        return value.astimezone(UTC)

    def _stream(self, lo: datetime, inclusive: bool, hi: datetime | None) -> Iterator[datetime]:
        """All occurrences t with lo < t (lo <= t if inclusive), t <= hi; hi None: HORIZON after lo
        for the rule itself, no limit for extra dates."""
        if lo < self._start:
            lo, inclusive = self._start, True
        if lo > _LATEST:
            return
        own_hi = extra_hi = _LATEST if hi is None else min(hi, _LATEST)
        if hi is None:
            own_hi = _horizon_end(lo)
        if self._own_end is not None:
            own_hi = min(own_hi, self._own_end)
        if self._end is not None:
            extra_hi = min(extra_hi, self._end)
        first_extra = bisect_left(self._extras, lo) if inclusive else bisect_right(self._extras, lo)
        extras = (value for value in self._extras[first_extra:] if value <= extra_hi)
        own = self._own(lo, inclusive, own_hi) if lo <= own_hi else iter(())
        for value in _unique(heapq.merge(own, extras)):
            if not self._except or value.astimezone(self._tz).date() not in self._except:
                yield value

    def _own(self, lo: datetime, inclusive: bool, hi: datetime) -> Iterator[datetime]:
        """The rule's own occurrences in the window, for start <= lo and hi <= the own end."""
        schedule = self._schedule
        if isinstance(schedule, OnceSchedule):
            at = self._instant(schedule.at)
            if (lo < at or (inclusive and lo == at)) and at <= hi:
                yield at
            return
        if isinstance(schedule, IntervalSchedule):
            step = timedelta(seconds=schedule.seconds)
            steps, rest = divmod(lo - self._start, step)
            value = self._start + (steps if inclusive and not rest else steps + 1) * step
            while value <= hi:
                cpu.check()
                yield value
                value += step
            return
        if self._walls is None:
            return
        walls = self._walls(self._wall_floor(lo), self._wall_ceiling(hi))
        for value in _unique(self._instants(walls)):
            if value > hi:
                return
            if lo < value or (inclusive and lo == value):
                yield value

    def _offsets(self, instant: datetime) -> list[timedelta]:
        """UTC offsets in force around `instant`: enough to bound wall-clock times near it."""
        return [
            (instant + delta).astimezone(self._tz).utcoffset() or timedelta()
            for delta in (-_NEAR, timedelta(), _NEAR)
        ]

    def _wall_floor(self, instant: datetime) -> datetime:
        """Every wall-clock time that maps to `instant` or later is at or after this one."""
        return (instant + min(self._offsets(instant))).replace(tzinfo=None)

    def _wall_ceiling(self, instant: datetime) -> datetime:
        """Every wall-clock time that maps to `instant` or earlier is at or before this one."""
        return (instant + max(self._offsets(instant))).replace(tzinfo=None)

    def _instants(self, walls: Iterable[datetime]) -> Iterator[datetime]:
        """Ascending wall-clock times to ascending instants (fold=0), duplicates possible.

        The mapping keeps order except for times inside a spring-forward gap, which land after
        the real times just past the gap. So a gap time waits until a real wall-clock time shows
        that nothing earlier can follow.
        """
        waiting: list[datetime] = []
        for wall in walls:
            instant = wall.replace(tzinfo=self._tz).astimezone(UTC)
            heapq.heappush(waiting, instant)
            if instant.astimezone(self._tz).replace(tzinfo=None) != wall:
                continue
            while waiting and waiting[0] <= instant:
                yield heapq.heappop(waiting)
        yield from sorted(waiting)


def follow_slots(
    old: Recurrence, new: Recurrence, times: Iterable[datetime]
) -> dict[datetime, datetime | None]:
    """Where each of `old`'s occurrences in `times` goes in `new`: the occurrence with the same
    local date (in each one's zone) and slot, or None when that day has no such slot any more.
    Times that are not occurrences of `old` are left out: there is no day and slot to follow.
    Each day is computed once, however many of `times` fall on it."""
    before: dict[date, list[datetime]] = {}
    after: dict[date, list[datetime]] = {}
    moves: dict[datetime, datetime | None] = {}
    for instant in times:
        day = _require_aware(instant, "instant").astimezone(old._tz).date()
        if day not in before:
            before[day] = old.on_day(day)
        if instant not in before[day]:
            continue
        if day not in after:
            after[day] = new.on_day(day)
        slot = before[day].index(instant)
        moves[instant] = after[day][slot] if slot < len(after[day]) else None
    return moves
