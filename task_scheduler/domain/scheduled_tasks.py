"""The RMF dashboard's scheduled tasks (rmf-web api-server's ``/scheduled_tasks``) as rules.

A scheduled task is a task request with a list of ``schedules`` in the style of the Python
``schedule`` library (``every`` N ``period`` ``at`` a time), each read as wall-clock time in
the service's time zone. All of them become one recurrence of a rule in that zone, so the
rule engine (previews, exactly-once dispatch, exceptions, history) serves them:

- ``day`` periods alone become a ``daily`` schedule; weekday periods whose days and times
  pair up fully a ``weekly`` one (``daily`` when ``day`` periods are among them); any
  other mix an ``rrule`` set, one rule per schedule. A time two schedules share fires once,
  not twice as in the api-server.
- ``start_from``, ``until`` and ``except_dates`` become the schedule's ``start``, ``end`` and
  ``except_dates`` (dates in the service's zone).

Reading a rule back gives the same schedules (``at`` normalised: ``HH:MM[:SS]``, ``MM:SS``
for ``hour``, ``:SS`` for ``minute``; ``every`` null for 1). A rule these schedules cannot
say (another kind or zone, a ``count``, extra dates) reads as None. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from itertools import product
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from task_scheduler.domain.schedule import (
    MAX_LISTED_DATES,
    MAX_RRULE_INTERVAL,
    MAX_RRULES,
    WEEKDAYS,
    DailySchedule,
    Moment,
    RRuleSchedule,
    Schedule,
    WeeklySchedule,
    parse_rrule,
)

PERIODS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_SCHEDULES = MAX_RRULES
METADATA_KEY = "scheduled_task"
"""A rule made through /scheduled_tasks carries ``metadata["scheduled_task"]``."""

Period = Literal[
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "day", "hour", "minute"
]

# The `schedule` library's formats and messages (Job.at, Job.monday, Job.until), which the
# dashboard and the api-server's clients know.
_AT_FORMATS = {
    "day": (re.compile(r"[0-2]\d:[0-5]\d(:[0-5]\d)?"), "a daily job (valid format is HH:MM(:SS)?)"),
    "hour": (re.compile(r"([0-5]\d)?:[0-5]\d"), "an hourly job (valid format is (MM)?:SS)"),
    "minute": (re.compile(r":[0-5]\d"), "a minutely job (valid format is :SS)"),
}
NEVER_RUNS = "Task is never going to run"
UNTIL_PAST = "Cannot schedule a job to run until a time in the past"
WEEKLY_ONLY = (
    "Scheduling .{day}() jobs is only allowed for weekly jobs. Using .{day}() on a job scheduled"
    " to run every 2 or more weeks is not supported."
)


class ScheduleRejected(ValueError):
    """A schedule the api-server refuses; the message is the one it gives (a 422)."""


class ScheduleItem(BaseModel):
    """One schedule: every `every` `period` at `at` (wall-clock time in the service's zone)."""

    model_config = ConfigDict(extra="ignore")  # old dashboards send start_from/until here

    every: int | None = Field(None, ge=1, le=MAX_RRULE_INTERVAL, description="Default 1.")
    period: Period
    at: str = Field(
        description="day and weekdays: HH:MM or HH:MM:SS; hour: MM:SS or :MM; minute: :SS.",
        examples=["08:00"],
    )


class TaskRequest(BaseModel):
    """An Open-RMF task_request, as the dashboard sends it (unknown keys are ignored)."""

    category: str
    description: Any
    unix_millis_earliest_start_time: int | None = None
    unix_millis_request_time: int | None = None
    priority: dict[str, Any] | None = None
    labels: list[str] | None = None
    requester: str | None = None
    fleet_name: str | None = None


class ScheduledTaskBody(BaseModel):
    """The body of create and update (the api-server's PostScheduledTaskRequest)."""

    task_request: TaskRequest
    schedules: list[ScheduleItem] = Field(max_length=MAX_SCHEDULES)
    start_from: Moment | None = Field(None, description="No occurrence before it.")
    until: Moment | None = Field(None, description="No occurrence after it (inclusive).")
    except_dates: list[Moment] = Field(
        default_factory=list,
        max_length=MAX_LISTED_DATES,
        description="Days without any occurrence; each is taken as its date in the service's zone.",
    )


class ExceptDate(BaseModel):
    except_date: Moment = Field(description="Its date in the service's zone gets no occurrence.")


class ScheduledTask(BaseModel):
    """A scheduled task as the api-server answers it; `id` is the rule's."""

    id: int
    task_request: TaskRequest
    created_by: str
    schedules: list[ScheduleItem]
    last_ran: datetime | None
    start_from: datetime | None
    until: datetime | None
    except_dates: list[date] = Field(description="YYYY-MM-DD, in the service's zone.")


def instant(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware instant; a naive value is wall-clock time in the service's zone."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(timezone.utc)


def local_date(value: datetime, zone: ZoneInfo) -> date:
    """The date of `value` in the service's zone (the api-server's except date)."""
    return instant(value, zone).astimezone(zone).date()


def _at(item: ScheduleItem) -> time:
    """The time of day (day, weekdays) or of the hour or minute that `at` names, read as the
    `schedule` library reads it."""
    kind = "day" if item.period in PERIODS else item.period
    pattern, what = _AT_FORMATS[kind]
    if not pattern.fullmatch(item.at):
        raise ScheduleRejected(f"Invalid time format for {what}")
    values = item.at.split(":")
    if kind == "minute":
        return time(0, 0, int(values[1]))
    if kind == "hour":
        return time(0, int(values[0]), int(values[1])) if values[0] else time(0, int(values[1]))
    if int(values[0]) > 23:
        raise ScheduleRejected("Invalid number of hours ({} is not between 0 and 23)")
    return time(*(int(value) for value in values))


def _check(item: ScheduleItem) -> time:
    if item.period in PERIODS and (item.every or 1) != 1:
        raise ScheduleRejected(WEEKLY_ONLY.format(day=item.period))
    return _at(item)


def _clock(at: time) -> str:
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


def _line(item: ScheduleItem, at: time) -> str:
    every = item.every or 1
    interval = f";INTERVAL={every}" if every != 1 else ""
    if item.period == "minute":
        return f"FREQ=MINUTELY{interval};BYSECOND={at.second}"
    if item.period == "hour":
        return f"FREQ=HOURLY{interval};BYMINUTE={at.minute};BYSECOND={at.second}"
    when = f"BYHOUR={at.hour};BYMINUTE={at.minute};BYSECOND={at.second}"
    if item.period == "day":
        return f"FREQ=DAILY{interval};{when}"
    return f"FREQ=WEEKLY;BYDAY={RRULE_DAYS[PERIODS.index(item.period)]};{when}"


def _recurrence(items: list[ScheduleItem]) -> dict[str, Any]:
    """The schedules as one schedule document without its bounds (see the module docstring)."""
    times = [_check(item) for item in items]
    if not items:
        raise ScheduleRejected(NEVER_RUNS)
    everies = {item.every or 1 for item in items}
    if all(item.period == "day" for item in items) and len(everies) == 1:
        return {"kind": "daily", "every": everies.pop(), "times": sorted({_clock(at) for at in times})}
    if all(item.period in (*PERIODS, "day") for item in items) and everies == {1}:
        pairs = {
            (day, _clock(at))
            for item, at in zip(items, times, strict=True)
            for day in (range(7) if item.period == "day" else [PERIODS.index(item.period)])
        }
        days = sorted({day for day, _ in pairs})
        clocks = sorted({clock for _, clock in pairs})
        if pairs == set(product(days, clocks)):
            if any(item.period == "day" for item in items):  # then every day is in
                return {"kind": "daily", "every": 1, "times": clocks}
            return {"kind": "weekly", "weekdays": [WEEKDAYS[day] for day in days], "times": clocks}
    lines = dict.fromkeys(_line(item, at) for item, at in zip(items, times, strict=True))
    return {"kind": "rrule", "rrule": "\n".join(lines)}


def check_until(body: ScheduledTaskBody, zone: ZoneInfo, now: datetime) -> None:
    """A new `until` in the past is refused, as the api-server refuses it."""
    if body.until is not None and instant(body.until, zone) < now:
        raise ScheduleRejected(UNTIL_PAST)


def to_schedule(body: ScheduledTaskBody, zone: ZoneInfo, *, anchor: datetime) -> dict[str, Any]:
    """The rule's schedule document for a scheduled task; ScheduleRejected with the api-server's
    message for schedules it refuses. `anchor` starts the count of `every` N when
    `start_from` is not given (the creation time, kept across updates)."""
    document = _recurrence(body.schedules)
    until = instant(body.until, zone) if body.until is not None else None
    start = instant(body.start_from, zone) if body.start_from is not None else anchor
    return {
        **document,
        "start": start.isoformat(),
        "end": until.isoformat() if until is not None else None,
        "except_dates": sorted({local_date(value, zone).isoformat() for value in body.except_dates}),
    }


def _item(period: str, every: int, at: str) -> ScheduleItem:
    return ScheduleItem(period=period, every=None if every == 1 else every, at=at)


_NUMBER = re.compile(r"\d{1,2}")


def _from_line(line: str) -> ScheduleItem | None:
    """A schedule from one rule that `_line` could have written; None for any other."""
    parts = parse_rrule(line)
    freq, every = parts.pop("FREQ"), int(parts.pop("INTERVAL", "1"))
    shapes = {
        "DAILY": {"BYHOUR", "BYMINUTE", "BYSECOND"},
        "WEEKLY": {"BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"},
        "HOURLY": {"BYMINUTE", "BYSECOND"},
        "MINUTELY": {"BYSECOND"},
    }
    day = parts.pop("BYDAY", None)
    if parts.keys() | ({"BYDAY"} if day else set()) != shapes.get(freq):
        return None
    if freq == "WEEKLY" and (every != 1 or day not in RRULE_DAYS):
        return None
    if not all(_NUMBER.fullmatch(value) for value in parts.values()):
        return None  # a list of values
    hour, minute, second = (int(parts.get(name, 0)) for name in ("BYHOUR", "BYMINUTE", "BYSECOND"))
    if freq == "MINUTELY":
        return _item("minute", every, f":{second:02d}")
    if freq == "HOURLY":
        return _item("hour", every, f"{minute:02d}:{second:02d}")
    at = _clock(time(hour, minute, second))
    if freq == "DAILY":
        return _item("day", every, at)
    return _item(PERIODS[RRULE_DAYS.index(day)], 1, at)


def schedule_items(schedule: Schedule) -> list[ScheduleItem] | None:
    """The schedules a rule's schedule reads as; None when they cannot say it."""
    if schedule.count is not None or schedule.extra_dates:
        return None
    match schedule:
        case DailySchedule():
            return [_item("day", schedule.every, at) for at in schedule.times]
        case WeeklySchedule() if schedule.every == 1:
            return [
                _item(PERIODS[WEEKDAYS.index(day)], 1, at)
                for day, at in product(schedule.weekdays, schedule.times)
            ]
        case RRuleSchedule():
            items = [_from_line(line) for line in schedule.lines()]
            return None if None in items else items  # type: ignore[return-value]
        case _:
            return None


def is_scheduled_task(metadata: dict[str, Any]) -> bool:
    return isinstance(metadata.get(METADATA_KEY), dict)


def scheduled_task(
    *,
    rule_id: int,
    timezone: str,
    schedule: Schedule,
    request: dict[str, Any],
    metadata: dict[str, Any],
    created_by: str | None,
    zone: ZoneInfo,
    last_ran: datetime | None,
) -> ScheduledTask | None:
    """A rule as the api-server shows a scheduled task; None unless it was made through
    /scheduled_tasks and its schedule, in the service's zone, is one the contract can say."""
    ours = is_scheduled_task(metadata) and timezone == zone.key
    items = schedule_items(schedule) if ours else None
    if items is None:
        return None
    open_start = metadata[METADATA_KEY].get("open_start", False)
    start = schedule.start
    return ScheduledTask(
        id=rule_id,
        # A rule keeps "no labels" as []; the api-server answers null for labels not sent.
        task_request=TaskRequest.model_validate({**request, "labels": request.get("labels") or None}),
        created_by=created_by or "anonymous",
        schedules=items,
        last_ran=last_ran,
        start_from=None if open_start or start is None else instant(start, zone),
        until=instant(schedule.end, zone) if schedule.end is not None else None,
        except_dates=list(schedule.except_dates),
    )


def listed(task: ScheduledTask, start_before: datetime, until_after: datetime) -> bool:
    """The api-server's filter: may the task have occurrences between the two bounds?"""
    return (task.start_from is None or task.start_from <= start_before) and (
        task.until is None or task.until >= until_after
    )
