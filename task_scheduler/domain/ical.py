"""Rules as iCalendar (RFC 5545): pure planning and rendering, no storage, no clock.

A calendar kind (daily, weekly, monthly, monthly_weekday) is said as one VEVENT with an
RRULE per time of day, its DTSTART in the rule's zone (TZID, with a VTIMEZONE): RFC 5545
puts a time inside a spring-forward gap at the offset before the gap and takes the first
of a fall-back day's two, as the service does (see domain.recurrence). `interval` counts
real elapsed time, so its series starts in UTC. `count` becomes UNTIL (the count-th
occurrence), so it survives the split by time of day; `except_dates` become EXDATEs.
Anything else (`once`, `cron`, `rrule` schedules, extra dates) is a list of single events.
Two times of day that land on one instant on a spring-forward day (02:30 and 03:30) are
one occurrence for the service and two instances here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import (
    DailySchedule,
    IntervalSchedule,
    MonthlySchedule,
    MonthlyWeekdaySchedule,
    Schedule,
    WeeklySchedule,
)

UTC = timezone.utc
# Tasks have no known length; calendar apps need one to draw an event.
EVENT_LENGTH = timedelta(minutes=15)
PRODID = "-//rmf-task-scheduler//calendar feed//EN"
_UNIT = {"seconds": "SECONDLY", "minutes": "MINUTELY", "hours": "HOURLY"}
_ICAL_DAYS = {"mon": "MO", "tue": "TU", "wed": "WE", "thu": "TH", "fri": "FR", "sat": "SA", "sun": "SU"}


@dataclass
class Series:
    """One VEVENT with an RRULE, and its exceptions: EXDATEs and moved instances."""

    uid: str
    start: datetime  # aware: the zone's wall time, or UTC for interval
    recur: dict[str, Any]
    summary: str
    description: str = ""
    exdates: list[datetime] = field(default_factory=list)
    moved: list[tuple[datetime, datetime]] = field(default_factory=list)  # (recurrence-id, new start)

    def instance(self, instant: datetime) -> datetime:
        """The RECURRENCE-ID / EXDATE value of the instance at ``instant``, in the series' form."""
        if self.start.tzinfo is UTC:
            return instant.astimezone(UTC)
        return datetime.combine(instant.astimezone(self.start.tzinfo).date(), self.start.timetz())


@dataclass(frozen=True)
class Single:
    uid: str
    start: datetime
    summary: str
    description: str = ""


def series_of(
    schedule: Schedule, tz: ZoneInfo, default_start: datetime, after: datetime, uid: str, summary: str
) -> list[Series] | None:
    """The schedule's own occurrences (extra dates aside) after ``after`` as RRULE series, one
    per time of day; None when RFC 5545 cannot say them exactly."""
    match schedule:
        case IntervalSchedule():
            recur: dict[str, Any] = {"FREQ": _UNIT[schedule.unit], "INTERVAL": schedule.every}
        case DailySchedule():
            recur = {"FREQ": "DAILY", "INTERVAL": schedule.every}
        case WeeklySchedule():
            days = [_ICAL_DAYS[d] for d in schedule.weekdays]
            recur = {"FREQ": "WEEKLY", "INTERVAL": schedule.every, "BYDAY": days, "WKST": "MO"}
        case MonthlySchedule():
            recur = {"FREQ": "MONTHLY", "INTERVAL": schedule.every, "BYMONTHDAY": list(schedule.days)}
        case MonthlyWeekdaySchedule():
            day = f"{schedule.nth}{_ICAL_DAYS[schedule.weekday]}"
            recur = {"FREQ": "MONTHLY", "INTERVAL": schedule.every, "BYDAY": [day]}
        case _:
            return None
    own = schedule.model_copy(update={"extra_dates": []})
    until = _until(own, tz, default_start)
    if until is not None:
        recur["UNTIL"] = until
    if isinstance(schedule, IntervalSchedule):
        first = Recurrence(own.model_copy(update={"except_dates": []}), tz, default_start).next_after(
            after, 1
        )
        if not first or (until is not None and first[0] > until):
            return []
        series = Series(uid, first[0], recur, summary)
        series.exdates = [t for t in _on_days(own, tz, default_start, after, until)]
        return [series]
    found = []
    for at in schedule.times:
        one = own.model_copy(update={"times": [at], "except_dates": [], "count": None})
        following = Recurrence(one, tz, default_start).next_after(after, 1)
        if not following or (until is not None and following[0] > until):
            continue
        first = following[0]
        start = datetime.combine(first.astimezone(tz).date(), time.fromisoformat(at), tzinfo=tz)
        series = Series(f"{uid}-{at.replace(':', '')}", start, dict(recur), summary)
        series.exdates = [datetime.combine(day, start.timetz()) for day in schedule.except_dates]
        found.append(series)
    return found


def _until(schedule: Schedule, tz: ZoneInfo, default_start: datetime) -> datetime | None:
    """The series' last instant in UTC: ``end``, or the count-th occurrence before exceptions."""
    if schedule.count is not None:
        counted = schedule.model_copy(update={"except_dates": [], "count": None})
        recurrence = Recurrence(counted, tz, default_start)
        first = recurrence.first()
        if first is None:
            return None
        return [first, *recurrence.next_after(first, schedule.count - 1)][-1]
    if schedule.end is not None:
        end = schedule.end if schedule.end.tzinfo else schedule.end.replace(tzinfo=tz)
        return end.astimezone(UTC)
    return None


def _on_days(
    schedule: Schedule, tz: ZoneInfo, default_start: datetime, after: datetime, until: datetime | None
):
    """An interval's instants on its except dates (EXDATEs in UTC)."""
    plain = Recurrence(schedule.model_copy(update={"except_dates": [], "count": None}), tz, default_start)
    for day in schedule.except_dates:
        lo = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
        hi = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
        for t in plain.between(max(lo, after), hi):
            if until is None or t <= until:
                if t.astimezone(tz).date() == day:
                    yield t


def series_for(series: Iterable[Series], instant: datetime) -> Series | None:
    """The series whose time of day the instant has (the only one for interval)."""
    for one in series:
        if one.start.tzinfo is UTC or instant.astimezone(one.start.tzinfo).timetz() == one.start.timetz():
            return one
    return None


def render(
    name: str, site_zone: str, series: Iterable[Series], singles: Iterable[Single], now: datetime
) -> bytes:
    """The VCALENDAR document, with a VTIMEZONE for every zone an event names."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", site_zone)
    for one in series:
        event = _event(one.uid, one.start, one.summary, one.description, now)
        event.add("rrule", one.recur)
        if one.exdates:
            event.add("exdate", sorted(one.exdates))
        calendar.add_component(event)
        for original, start in one.moved:
            moved = _event(one.uid, _in_zone(start, one.start), one.summary, one.description, now)
            moved.add("recurrence-id", original)
            calendar.add_component(moved)
    for single in singles:
        calendar.add_component(_event(single.uid, single.start, single.summary, single.description, now))
    calendar.add_missing_timezones()
    return calendar.to_ical()


def _in_zone(instant: datetime, like: datetime) -> datetime:
    return instant.astimezone(like.tzinfo)


def _event(uid: str, start: datetime, summary: str, description: str, now: datetime) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start)
    event.add("duration", EVENT_LENGTH)
    event.add("summary", summary)
    if description:
        event.add("description", description)
    return event
