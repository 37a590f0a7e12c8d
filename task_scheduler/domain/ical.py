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
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from task_scheduler.domain import cpu
from task_scheduler.domain.errors import Invalid
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
        cpu.check()
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
        cpu.check()  # to_ical() then takes about as long again as these
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


# -- import -------------------------------------------------------------------------------

MAX_IMPORTED = 100  # events one import may hold: a batch of rules, all or none
_SUB_DAILY = ("HOURLY", "MINUTELY", "SECONDLY")


def rules_from_ics(text: str) -> list[dict[str, Any]]:
    """A rule document (name, timezone, schedule) for each VEVENT of an iCalendar text: an
    RRULE becomes an `rrule` schedule (UNTIL its `end`, COUNT its `count`), RDATEs its extra
    dates and EXDATEs its except dates; an event without RRULE or RDATE runs once. Raises
    Invalid naming the event (events[i]) and the property it cannot express."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise Invalid.at(("calendar",), f"not an iCalendar text: {exc}") from None
    events = [e for e in calendar.walk("VEVENT") if str(e.get("STATUS", "")).upper() != "CANCELLED"]
    if not events:
        raise Invalid.at(("calendar",), "holds no VEVENT")
    if len(events) > MAX_IMPORTED:
        raise Invalid.at(("calendar",), f"holds {len(events)} events; at most {MAX_IMPORTED} at once")
    return [_rule_from_event(event, ("calendar", "events", i)) for i, event in enumerate(events)]


def _rule_from_event(event: Event, at: tuple[str | int, ...]) -> dict[str, Any]:
    def refuse(prop: str, why: str) -> Invalid:
        return Invalid.at((*at, prop), why)

    for prop, why in (
        (
            "RECURRENCE-ID",
            "a moved or changed occurrence cannot be imported: import the series, then move it",
        ),
        ("EXRULE", "EXRULE is deprecated by RFC 5545 and not supported; use EXDATE"),
    ):
        if prop in event:
            raise refuse(prop, why)
    name = str(event.get("SUMMARY", "")).strip()
    if not name:
        raise refuse("SUMMARY", "is required: it names the rule")
    if "DTSTART" not in event:
        raise refuse("DTSTART", "is required")
    start = event["DTSTART"].dt
    if not isinstance(start, datetime):
        raise refuse("DTSTART", "an all-day event has no time of day to run at")
    zone = _zone_name(start)
    if zone is None and start.tzinfo is not None:
        raise refuse("DTSTART", f"TZID {event['DTSTART'].params.get('TZID')!r} is not an IANA time zone")
    wall = start.replace(tzinfo=None) if zone is not None else start
    rule: dict[str, Any] = {"name": name[:200], "description": str(event.get("DESCRIPTION", ""))[:10000]}
    if zone is not None:
        rule["timezone"] = zone
    rrules = event.get("RRULE")
    if isinstance(rrules, list):
        raise refuse("RRULE", "more than one RRULE in one event is not supported")
    except_dates = sorted({_local(d, start).date() for d in _dates(event, "EXDATE", refuse)})
    extra_dates = [_local(d, start).replace(tzinfo=None).isoformat() for d in _dates(event, "RDATE", refuse)]
    if rrules is None:
        schedule: dict[str, Any] = {"kind": "once", "at": wall.isoformat()}
        if extra_dates:
            schedule |= {"start": wall.isoformat(), "extra_dates": extra_dates}
    else:
        parts = dict(rrules)
        schedule = {"kind": "rrule", "start": wall.isoformat()}
        if "UNTIL" in parts:
            until = parts.pop("UNTIL")[0]
            if not isinstance(until, datetime):
                until = datetime.combine(until, time(23, 59, 59))
            schedule["end"] = _local(until, start).replace(tzinfo=None).isoformat()
        if "COUNT" in parts:
            schedule["count"] = int(parts.pop("COUNT")[0])
        freq = str(parts.get("FREQ", [""])[0]).upper()
        several_a_day = freq in _SUB_DAILY or any(len(parts.get(p, [])) > 1 for p in ("BYHOUR", "BYMINUTE"))
        if except_dates and several_a_day:
            raise refuse(
                "EXDATE", "a rule skips whole days: an EXDATE in a series that runs several times a day"
            )
        schedule["rrule"] = type(rrules)(parts).to_ical().decode()
        if extra_dates:
            schedule["extra_dates"] = extra_dates
    if except_dates:
        schedule["except_dates"] = [d.isoformat() for d in except_dates]
    rule["schedule"] = schedule
    return rule


def _zone_name(value: datetime) -> str | None:
    """The IANA name of a datetime's zone; None for a floating time or an unknown zone."""
    if value.tzinfo is None:
        return None
    if value.tzinfo is UTC:
        return "UTC"
    return getattr(value.tzinfo, "key", None)


def _local(value: datetime | date, start: datetime) -> datetime:
    """A date or datetime as wall time in the zone of ``start`` (floating stays floating)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, start.timetz())
    if value.tzinfo is None or start.tzinfo is None:
        return value
    return value.astimezone(start.tzinfo)


def _dates(event: Event, prop: str, refuse: Any) -> list[datetime | date]:
    value = event.get(prop)
    if value is None:
        return []
    found: list[datetime | date] = []
    for one in value if isinstance(value, list) else [value]:
        for item in one.dts:
            if isinstance(item.dt, tuple):
                raise refuse(prop, "a PERIOD value cannot be a rule's date")
            found.append(item.dt)
    return found
