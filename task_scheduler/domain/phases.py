"""Daily and weekly rules by their time of day, so a listing's page deep in a window costs
the page, not the number of rules.

A daily or weekly rule (every N days or weeks) fires on the days whose ordinal is one
residue modulo its period (N, or 7N for each of its weekdays), at fixed wall-clock times.
On a day whose zone keeps one UTC offset around it, the wall clock maps to instants by a
constant shift, so its occurrences that day are its times, in order.  The index keeps, per
(zone, category, kind, period, residue), the rules' times sorted by (second of the day, id),
and a page bisects into the groups of the days it reaches.

Exact: candidates come with the rule's own bounds applied (start, end, exception dates);
rules with a count or extra dates are not indexed; a UTC day within two days of a change of
its zone's offset is computed by each rule's Recurrence, as the lazy streams do.  What
depends on the database at the time of the page (where stored occurrences end, whether the
rule still exists at the same version) is checked by the caller.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from math import ceil
from zoneinfo import ZoneInfo

from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import WEEKDAYS, DailySchedule, Schedule, WeeklySchedule, schedule_adapter
from task_scheduler.domain.tasks import task_id

UTC = timezone.utc
DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# A UTC day is computed by constant shift only when its zone keeps one offset from two days
# before it to two days after: a wall time in a gap is pushed at most a day (Samoa, 2011).
_STEADY_BEFORE = 2 * DAY
_STEADY_AFTER = 3 * DAY
_PROBE = 3600  # offsets are probed hourly; no zone changes its offset twice within an hour
_LATEST_DAY = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp()) // DAY  # recurrence stops at 9800
_STEADY_KEPT = 100_000  # (zone, day) offsets remembered


def indexable(schedule: Schedule) -> bool:
    """Daily and weekly rules without a count or extra dates, at whole seconds."""
    return (
        isinstance(schedule, (DailySchedule, WeeklySchedule))
        and schedule.count is None
        and not schedule.extra_dates
    )


@dataclass(slots=True)
class IndexedRule:
    """What a candidate is checked against, and what rebuilds the rule's Recurrence."""

    version: object
    zone: str
    start: float  # epoch seconds of the first instant the rule may fire
    end: float | None  # epoch seconds of the last
    except_days: frozenset[int] | None  # ordinals of local dates
    schedule: str  # as stored (JSON), to compute a day near an offset change
    default_start: datetime

    def recurrence(self) -> Recurrence:
        schedule = schedule_adapter.validate_json(self.schedule)
        return Recurrence(schedule, ZoneInfo(self.zone), self.default_start)


@dataclass(slots=True)
class _Group:
    """Rules firing on the days d with d % period == residue, by (second of the day, id)."""

    seconds: array = field(default_factory=lambda: array("l"))
    ids: array = field(default_factory=lambda: array("q"))
    pending: list[tuple[int, str, int]] = field(default_factory=list)

    def seal(self) -> None:
        self.pending.sort()
        self.seconds = array("l", (second for second, _, _ in self.pending))
        self.ids = array("q", (rule_id for _, _, rule_id in self.pending))
        self.pending = []


# (category, kind, period, residue)
_GroupKey = tuple[str | None, str, int, int]
# An occurrence while merging: (epoch second, rule id as text, rule id).
_Found = tuple[int, str, int]


class PhaseIndex:
    """Indexed rules of one version of the rules table; built once, then read only."""

    def __init__(self) -> None:
        self.rules: dict[int, IndexedRule] = {}
        self._zones: dict[str, dict[_GroupKey, _Group]] = {}
        self._steady: dict[tuple[str, int], int | None] = {}

    def add(
        self,
        rule_id: int,
        version: object,
        zone: str,
        category: str | None,
        kind: str,
        schedule_text: str,
        default_start: datetime,
    ) -> bool:
        """Index the rule if its schedule is indexable(); say whether it is."""
        schedule = schedule_adapter.validate_json(schedule_text)
        if not isinstance(schedule, (DailySchedule, WeeklySchedule)) or not indexable(schedule):
            return False
        tz = ZoneInfo(zone)
        start = schedule.start or default_start
        start_at = _instant(start, tz)
        anchor = (start if start.tzinfo is None else start.astimezone(tz)).toordinal()
        end = None if schedule.end is None else _instant(schedule.end, tz).timestamp()
        excepted = frozenset(day.toordinal() for day in schedule.except_dates) or None
        self.rules[rule_id] = IndexedRule(
            version, zone, start_at.timestamp(), end, excepted, schedule_text, default_start
        )
        if isinstance(schedule, DailySchedule):
            periods = [(schedule.every, anchor % schedule.every)]
        else:
            period = 7 * schedule.every
            monday = (anchor - 1) // 7 * 7 + 1
            periods = [(period, (monday + WEEKDAYS.index(day)) % period) for day in set(schedule.weekdays)]
        seconds = {_second(value) for value in schedule.times}
        groups = self._zones.setdefault(zone, {})
        for period, residue in periods:
            group = groups.get((category, kind, period, residue))
            if group is None:
                group = groups[category, kind, period, residue] = _Group()
            group.pending.extend((second, str(rule_id), rule_id) for second in seconds)
        return True

    def seal(self) -> None:
        for groups in self._zones.values():
            for group in groups.values():
                group.seal()

    def candidates(
        self, lo: datetime, hi: datetime, category: str | None, kind: str | None
    ) -> Iterator[tuple[datetime, str, int]]:
        """(instant, task id, rule id) of the indexed rules' occurrences in [lo, hi) matching
        the filters, by (instant, id); where their stored ones end is not considered."""
        first, end = ceil(lo.timestamp()), ceil(hi.timestamp())  # occurrences are whole seconds
        zones = []
        for zone, groups in self._zones.items():
            chosen = {
                key: group
                for key, group in groups.items()
                if (category is None or key[0] == category) and (kind is None or key[1] == kind)
            }
            if chosen:
                zones.append(self._zone(zone, chosen, first, end))
        # Same instant: by rule id as text, which is the order of their task ids.
        for at, _, rule_id in heapq.merge(*zones):
            instant = datetime.fromtimestamp(at, UTC)
            yield instant, task_id(rule_id, instant), rule_id

    def _zone(self, zone: str, groups: dict[_GroupKey, _Group], lo: int, hi: int) -> Iterator[_Found]:
        """Occurrences in epoch seconds [lo, hi), UTC day by UTC day."""
        for day in range(lo // DAY, -(-hi // DAY)):
            offset = self._steady_offset(zone, day)
            if offset is None:
                yield from (found for found in self._exact(groups, day) if lo <= found[0] < hi)
            else:
                yield from self._shifted(groups, day, offset, lo, hi)

    def _shifted(
        self, groups: dict[_GroupKey, _Group], day: int, offset: int, lo: int, hi: int
    ) -> Iterator[_Found]:
        """A steady UTC day: the local day it starts in from its local second, then the next."""
        first, second = divmod(day * DAY + offset, DAY)
        for local_day, begin, end in ((first, second, DAY), (first + 1, 0, second)):
            ordinal = local_day + _EPOCH_ORDINAL
            base = local_day * DAY - offset
            begin, end = max(begin, lo - base), min(end, hi - base)
            if begin >= end:
                continue
            streams = [
                self._fired(group, ordinal, base, begin, end)
                for (_, _, period, residue), group in groups.items()
                if ordinal % period == residue
            ]
            yield from heapq.merge(*streams)

    def _fired(self, group: _Group, ordinal: int, base: int, lo: int, hi: int) -> Iterator[_Found]:
        seconds, ids, rules = group.seconds, group.ids, self.rules
        for n in range(bisect_left(seconds, lo), bisect_left(seconds, hi)):
            rule_id = ids[n]
            rule = rules[rule_id]
            at = base + seconds[n]
            if at < rule.start or (rule.end is not None and at > rule.end):
                continue
            if rule.except_days is not None and ordinal in rule.except_days:
                continue
            yield at, str(rule_id), rule_id

    def _exact(self, groups: dict[_GroupKey, _Group], day: int) -> list[_Found]:
        """A UTC day near an offset change: every rule of the groups, by its Recurrence."""
        lo = datetime.fromtimestamp(day * DAY, UTC)
        hi = lo + timedelta(days=1) - timedelta(microseconds=1)
        rule_ids = {rule_id for group in groups.values() for rule_id in group.ids}
        found = []
        for rule_id in rule_ids:
            for instant in self.rules[rule_id].recurrence().between(lo, hi, inclusive=True):
                found.append((int(instant.timestamp()), str(rule_id), rule_id))
        return sorted(found)

    def _steady_offset(self, zone: str, day: int) -> int | None:
        """The zone's UTC offset (seconds) if it keeps one around this UTC day, else None."""
        key = (zone, day)
        if day >= _LATEST_DAY:
            return None
        if key not in self._steady:
            if len(self._steady) >= _STEADY_KEPT:
                self._steady.clear()
            tz = ZoneInfo(zone)
            begin = day * DAY - _STEADY_BEFORE
            offsets = {
                datetime.fromtimestamp(at, UTC).astimezone(tz).utcoffset()
                for at in range(begin, day * DAY + _STEADY_AFTER + 1, _PROBE)
            }
            only = offsets.pop() if len(offsets) == 1 else None
            self._steady[key] = None if only is None else int(only.total_seconds())
        return self._steady[key]


def _second(value: str) -> int:
    at = time.fromisoformat(value)
    return at.hour * 3600 + at.minute * 60 + at.second


def _instant(value: datetime, tz: ZoneInfo) -> datetime:
    """As Recurrence reads a schedule's moment: naive is wall time in the zone (fold=0)."""
    value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(UTC)
