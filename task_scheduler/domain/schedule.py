"""The `schedule` of a rule: one pydantic model per kind, chosen by `kind`.

Values are normalised on the way in, so that equal schedules compare equal: lists are
de-duplicated and sorted, weekday names lower-cased, times written HH:MM (HH:MM:SS when the
seconds matter), aware datetimes converted to UTC and every datetime truncated to whole milliseconds (the
precision a task id and every database keeps).

Datetimes (`at`, `start`, `end`, `extra_dates`): a naive value is wall-clock time in the rule's
time zone (kept on the rule, beside the schedule); an aware value is an instant.

Fields every kind takes:
- `start`: occurrences are counted from here and none falls before it. When it is absent the
  service uses the rule's creation time. For `once` it is only a lower bound.
- `end` (inclusive) or `count`, not both. As RFC 5545 COUNT, `count` limits the recurrence's own
  occurrences counted from `start`: `except_dates` are removed after counting, so they do not
  extend the series, and `extra_dates` come on top of the count.
- `except_dates`: dates, in the rule's zone, with no occurrence at all (extra dates included).
- `extra_dates`: additional occurrences; like all others they fall within `start`..`end`.

Month ends: a `monthly` day 29, 30 or 31 fires only in months that have that day (day 31 skips
30-day months and February, as RFC 5545 does); -1 is the last day of every month, -2 the one
before. Likewise a 5th weekday fires only in months that have five of them.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from dateutil.rrule import rrulestr
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_COUNT = 100_000
MAX_LISTED_DATES = 1000
MAX_TIMES = 1440
MAX_INTERVAL_SECONDS = 366 * 86400
MAX_RRULE_INTERVAL = 1000
MAX_RRULES = 100
EARLIEST_YEAR = 1900
LATEST_YEAR = 9000

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}

WeekdayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

_TIME = re.compile(r"(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?")


def _time_of_day(value: str) -> str:
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time of day; use HH:MM or HH:MM:SS, 00:00 to 23:59:59")
    seconds = match["s"] or "00"
    return f"{match['h']}:{match['m']}" + ("" if seconds == "00" else f":{seconds}")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _month_day(value: int) -> int:
    if value == 0:
        raise ValueError("0 is not a day of the month; use 1 to 31, or -1 (last day) to -31")
    return value


def whole_millis(value: datetime) -> datetime:
    """`value` truncated to the millisecond, the finest step a schedule or a task id keeps."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _moment(value: datetime) -> datetime:
    """Whole milliseconds, instants in UTC, and a year range where every zone and search stays valid."""
    value = whole_millis(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"year must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


TimeOfDay = Annotated[str, AfterValidator(_time_of_day)]
Weekday = Annotated[WeekdayName, BeforeValidator(_lower)]
MonthDay = Annotated[int, Field(ge=-31, le=31), AfterValidator(_month_day)]
Moment = Annotated[datetime, AfterValidator(_moment)]


def _comparable(a: datetime, b: datetime) -> bool:
    """Naive and aware values only compare once the rule's zone is known."""
    return (a.tzinfo is None) == (b.tzinfo is None)


class _Schedule(BaseModel):
    """Fields every kind takes; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    start: Moment | None = None
    end: Moment | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    except_dates: list[date] = Field(default_factory=list, max_length=MAX_LISTED_DATES)
    extra_dates: list[Moment] = Field(default_factory=list, max_length=MAX_LISTED_DATES)

    @field_validator("except_dates")
    @classmethod
    def _sorted_dates(cls, value: list[date]) -> list[date]:
        return sorted(set(value))

    @field_validator("extra_dates")
    @classmethod
    def _sorted_datetimes(cls, value: list[datetime]) -> list[datetime]:
        return sorted(set(value), key=lambda item: (item.tzinfo is not None, item.replace(tzinfo=None)))

    @model_validator(mode="after")
    def _end_or_count(self) -> "_Schedule":
        if self.end is not None and self.count is not None:
            raise ValueError("give either `end` or `count`, not both")
        if self.start and self.end and _comparable(self.start, self.end) and self.end < self.start:
            raise ValueError("`end` is before `start`")
        return self


def _unique_sorted(values: list[Any], key: Any = None) -> list[Any]:
    return sorted(set(values), key=key)


class OnceSchedule(_Schedule):
    """A single occurrence at `at` (never before `start`)."""

    kind: Literal["once"]
    at: Moment

    @model_validator(mode="after")
    def _at_after_start(self) -> "OnceSchedule":
        if self.start and _comparable(self.start, self.at) and self.at < self.start:
            raise ValueError("`at` is before `start`, so it would never run")
        return self


class IntervalSchedule(_Schedule):
    """Every `every` units of real elapsed time from `start`; DST changes do not stretch it."""

    kind: Literal["interval"]
    unit: Literal["seconds", "minutes", "hours"]
    every: int = Field(ge=1)

    @field_validator("every")
    @classmethod
    def _at_most_a_year(cls, value: int, info: ValidationInfo) -> int:
        unit = info.data.get("unit")
        if unit is not None and value * UNIT_SECONDS[unit] > MAX_INTERVAL_SECONDS:
            raise ValueError(f"{value} {unit} is longer than the maximum interval of 366 days")
        return value

    @property
    def seconds(self) -> int:
        return self.every * UNIT_SECONDS[self.unit]


class _Timed(_Schedule):
    """Kinds that fire at wall-clock `times` on the days they select."""

    times: list[TimeOfDay] = Field(min_length=1, max_length=MAX_TIMES)

    @field_validator("times")
    @classmethod
    def _sorted_times(cls, value: list[str]) -> list[str]:
        return _unique_sorted(value)


class DailySchedule(_Timed):
    """Every `every` days, counted from the date of `start`."""

    kind: Literal["daily"]
    every: int = Field(default=1, ge=1, le=3660)


class WeeklySchedule(_Timed):
    """On `weekdays` of every `every`-th week, counted from the Monday-based week holding `start`."""

    kind: Literal["weekly"]
    every: int = Field(default=1, ge=1, le=520)
    weekdays: list[Weekday] = Field(min_length=1, max_length=100)

    @field_validator("weekdays")
    @classmethod
    def _sorted_weekdays(cls, value: list[str]) -> list[str]:
        return _unique_sorted(value, key=WEEKDAYS.index)


class MonthlySchedule(_Timed):
    """On `days` of every `every`-th month from the month of `start` (month ends: module docstring)."""

    kind: Literal["monthly"]
    every: int = Field(default=1, ge=1, le=120)
    days: list[MonthDay] = Field(min_length=1, max_length=100)

    @field_validator("days")
    @classmethod
    def _sorted_days(cls, value: list[int]) -> list[int]:
        return _unique_sorted(value, key=lambda day: (day < 0, day))


class MonthlyWeekdaySchedule(_Timed):
    """On the `nth` `weekday` (-1: the last) of every `every`-th month from the month of `start`."""

    kind: Literal["monthly_weekday"]
    every: int = Field(default=1, ge=1, le=120)
    weekday: Weekday
    nth: Literal[1, 2, 3, 4, 5, -1]


@dataclass(frozen=True)
class CronFields:
    """A parsed cron expression. `weekdays` are numbered as datetime.weekday() (Monday = 0).

    As in Vixie cron, a day field is restricted when it does not start with `*`; when both are,
    a day matches if either matches, otherwise it must match both.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    days_restricted: bool
    weekdays_restricted: bool


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField(
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        1,
    ),
    _CronField("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _cron_value(token: str, field: _CronField) -> int:
    if _is_number(token):
        value = int(token)
    elif token in field.names:
        value = field.names.index(token) + field.first_name
    else:
        raise ValueError(
            f"cron {field.name} field: {token!r} is not a number" + (" or name" if field.names else "")
        )
    if not field.low <= value <= field.high:
        raise ValueError(f"cron {field.name} field: {value} is outside {field.low}-{field.high}")
    return value


def _cron_field(text: str, field: _CronField) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (_is_number(step_text) and int(step_text) > 0):
            raise ValueError(f"cron {field.name} field: step {step_text!r} must be a positive number")
        if base == "*":
            low, high = field.low, field.high
        else:
            first, dash, last = base.partition("-")
            low = _cron_value(first, field)
            high = _cron_value(last, field) if dash else (field.high if slash else low)
            if low > high:
                raise ValueError(f"cron {field.name} field: range {base!r} runs backwards")
        values.update(range(low, high + 1, int(step_text) if slash else 1))
    return tuple(sorted(values))


def parse_cron(expression: str) -> CronFields:
    """Parse a 5-field cron expression (minute hour day-of-month month day-of-week) or a macro.

    Lists, ranges, steps, `*`, month and weekday names; day-of-week 0 and 7 are both Sunday.
    """
    text = " ".join(expression.split()).lower()
    text = _CRON_MACROS.get(text, text)
    if text.startswith("@"):
        raise ValueError(
            f"unknown cron macro {expression!r}; use @hourly, @daily, @weekly, @monthly or @yearly"
        )
    parts = text.split(" ")
    if len(parts) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    minutes, hours, days, months, cron_weekdays = (
        _cron_field(part, field) for part, field in zip(parts, _CRON_FIELDS, strict=True)
    )
    return CronFields(
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=tuple(sorted({(day - 1) % 7 for day in cron_weekdays})),
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )


class CronSchedule(_Schedule):
    """A classic 5-field cron expression, in the rule's zone; see parse_cron and CronFields."""

    kind: Literal["cron"]
    expression: str = Field(max_length=1000)

    @field_validator("expression")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)
        return " ".join(value.split())

    def parsed(self) -> CronFields:
        return parse_cron(self.expression)


RRULE_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
RRULE_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_RRULE_NUMBERS = {
    "BYSECOND": (0, 59),
    "BYMINUTE": (0, 59),
    "BYHOUR": (0, 23),
    "BYMONTHDAY": (-31, 31),
    "BYYEARDAY": (-366, 366),
    "BYWEEKNO": (-53, 53),
    "BYMONTH": (1, 12),
    "BYSETPOS": (-366, 366),
}
# RFC 5545 3.3.10: the frequencies each part MUST NOT be used with.
_RRULE_FORBIDDEN = {
    "BYMONTHDAY": ("WEEKLY",),
    "BYYEARDAY": ("MONTHLY", "WEEKLY", "DAILY"),
    "BYWEEKNO": ("MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"),
}
_RRULE_BYDAY = re.compile(r"(?P<n>[+-]?\d{1,2})?(?P<day>MO|TU|WE|TH|FR|SA|SU)")
_RRULE_ELSEWHERE = {"COUNT": "use the schedule's `count`", "UNTIL": "use the schedule's `end`"}


def _rrule_numbers(name: str, value: str) -> None:
    low, high = _RRULE_NUMBERS[name]
    for item in value.split(","):
        if (
            not re.fullmatch(r"[+-]?\d+", item)
            or not low <= int(item) <= high
            or (low < 0 and int(item) == 0)
        ):
            raise ValueError(
                f"{name}: {item!r} is not a number in {low}..{high}" + (" except 0" if low < 0 else "")
            )


def _rrule_byday(freq: str, value: str) -> None:
    for item in value.split(","):
        match = _RRULE_BYDAY.fullmatch(item)
        if match is None:
            raise ValueError(f"BYDAY: {item!r} is not a weekday such as MO, 2TU or -1FR")
        if match["n"] is not None:
            if freq not in ("MONTHLY", "YEARLY"):
                raise ValueError(f"BYDAY: a numbered weekday such as {item!r} needs FREQ=MONTHLY or YEARLY")
            if not 1 <= abs(int(match["n"])) <= 53:
                raise ValueError(f"BYDAY: {item!r} must be numbered 1..53 or -1..-53")


def parse_rrule(text: str) -> dict[str, str]:
    """Check one RFC 5545 RRULE value (optionally prefixed `RRULE:`) and return its parts by name.

    The start comes from the schedule's `start`, so DTSTART and other lines are rejected, and
    COUNT/UNTIL must go in the schedule's `count`/`end`. BYEASTER, a dateutil extension, is not
    accepted either.
    """
    value = "".join(text.split()).upper().removeprefix("RRULE:")
    if ":" in value:
        raise ValueError(
            "give a single RRULE value; the start comes from `start` (no DTSTART, RDATE or EXDATE)"
        )
    parts: dict[str, str] = {}
    for pair in filter(None, value.split(";")):
        name, equals, part = pair.partition("=")
        if not equals or not part:
            raise ValueError(f"{pair!r} is not NAME=VALUE")
        if name in _RRULE_ELSEWHERE:
            raise ValueError(f"{name} is not accepted here: {_RRULE_ELSEWHERE[name]} instead")
        if name not in _RRULE_NUMBERS and name not in ("FREQ", "INTERVAL", "WKST", "BYDAY"):
            raise ValueError(f"unknown RRULE part {name!r}")
        if name in parts:
            raise ValueError(f"{name} is given twice")
        parts[name] = part
    freq = parts.get("FREQ")
    if freq not in RRULE_FREQUENCIES:
        raise ValueError(f"FREQ must be one of {', '.join(RRULE_FREQUENCIES)}")
    interval = parts.get("INTERVAL", "1")
    if not (_is_number(interval) and 1 <= int(interval) <= MAX_RRULE_INTERVAL):
        raise ValueError(f"INTERVAL must be a number from 1 to {MAX_RRULE_INTERVAL}")
    if parts.get("WKST", "MO") not in RRULE_WEEKDAYS:
        raise ValueError(f"WKST must be one of {', '.join(RRULE_WEEKDAYS)}")
    for name in parts.keys() & _RRULE_NUMBERS.keys():
        _rrule_numbers(name, parts[name])
    if "BYDAY" in parts:
        _rrule_byday(freq, parts["BYDAY"])
    for name, frequencies in _RRULE_FORBIDDEN.items():
        if name in parts and freq in frequencies:
            raise ValueError(f"{name} cannot be used with FREQ={freq}")
    if "BYSETPOS" in parts and not any(name.startswith("BY") and name != "BYSETPOS" for name in parts):
        raise ValueError("BYSETPOS needs another BYxxx part to pick from")
    # Final word to dateutil. INTERVAL is left out: with it dateutil rejects some BYxxx sets
    # depending on the phase of the start, which is not a property of the text.
    rrulestr(
        ";".join(f"{name}={part}" for name, part in parts.items() if name != "INTERVAL"),
        dtstart=datetime(2000, 1, 1),
    )
    return parts


class RRuleSchedule(_Schedule):
    """RFC 5545 RRULE text, the escape hatch; see parse_rrule for what is accepted.

    Several rules, one a line, make a set: an occurrence of any of them is one of the set's
    (an instant two of them share counts once)."""

    kind: Literal["rrule"]
    rrule: str = Field(max_length=MAX_RRULES * 200)

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str) -> str:
        lines = [line for line in value.splitlines() if line.strip()]
        if not lines:
            raise ValueError("give at least one RRULE value")
        if len(lines) > MAX_RRULES:
            raise ValueError(f"at most {MAX_RRULES} rules, one a line")
        for line in lines:
            parse_rrule(line)
        return "\n".join("".join(line.split()).upper().removeprefix("RRULE:") for line in lines)

    def lines(self) -> list[str]:
        """Each rule of the set, normalised."""
        return self.rrule.split("\n")


Schedule = Annotated[
    OnceSchedule
    | IntervalSchedule
    | DailySchedule
    | WeeklySchedule
    | MonthlySchedule
    | MonthlyWeekdaySchedule
    | CronSchedule
    | RRuleSchedule,
    Field(discriminator="kind"),
]

schedule_adapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)


def parse_schedule(data: Any) -> Schedule:
    """Validate a schedule from JSON-like data; raises pydantic.ValidationError."""
    return schedule_adapter.validate_python(data)
