"""The phase index gives exactly each rule's Recurrence, DST days included."""

import json
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.phases import PhaseIndex
from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import schedule_adapter
from task_scheduler.domain.tasks import task_id

UTC = timezone.utc
# Berlin: one-hour changes at 02:00/03:00; Nuuk: at local midnight-ish, -02/-01; Lord Howe:
# half-hour changes; Apia skipped 2011-12-30; Santiago changes at midnight.
ZONES = ["UTC", "Europe/Berlin", "America/Nuuk", "Australia/Lord_Howe", "Pacific/Apia", "America/Santiago"]
created = datetime(2011, 12, 1, 12, 0, 0, 123000, tzinfo=UTC)

times = st.lists(
    st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 59]), st.sampled_from([0, 0, 30])),
    min_size=1,
    max_size=3,
).map(lambda found: [f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in found])


@st.composite
def schedules(draw, base):
    kind = draw(st.sampled_from(["daily", "weekly"]))
    schedule = {"kind": kind, "times": draw(times), "every": draw(st.integers(1, 3))}
    if kind == "weekly":
        schedule["weekdays"] = draw(
            st.lists(
                st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1, max_size=3
            )
        )
    at = datetime.combine(base.date(), time.fromisoformat(draw(st.sampled_from(schedule["times"]))))
    start = at + timedelta(days=draw(st.integers(-20, 5)), milliseconds=draw(st.sampled_from([0, 500])))
    aware = draw(st.booleans())
    if draw(st.booleans()):
        schedule["start"] = (start.replace(tzinfo=UTC) if aware else start).isoformat()
    if draw(st.booleans()):
        end = start + timedelta(minutes=draw(st.integers(0, 60 * 1440)))
        schedule["end"] = (end.replace(tzinfo=UTC) if aware else end).isoformat()
    excepted = draw(st.lists(st.integers(-5, 15), max_size=3))
    schedule["except_dates"] = [(base.date() + timedelta(days=n)).isoformat() for n in excepted]
    return schedule


def _windows():
    starts = [
        datetime(2026, 3, 27),  # Berlin, Nuuk (2026-03-28) and Santiago (04-05) near
        datetime(2026, 4, 3),  # Lord Howe (04-05)
        datetime(2026, 10, 1),  # Lord Howe (10-04), Berlin (10-25)
        datetime(2026, 10, 22),
        datetime(2011, 12, 27),  # Apia's missing day
        datetime(2026, 6, 10),
    ]
    return st.tuples(
        st.sampled_from(starts), st.integers(-48, 96), st.sampled_from([1, 7, 30, 24 * 3, 24 * 12])
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), window=_windows(), category=st.sampled_from([None, "a"]))
def test_candidates_are_each_rules_occurrences_in_order(data, window, category):
    day, shift_h, hours = window
    rule = st.tuples(schedules(day), st.sampled_from(ZONES), st.sampled_from(["a", "b"]))
    rules = data.draw(st.lists(rule, min_size=1, max_size=6))
    index = PhaseIndex()
    expected = []
    lo = (day + timedelta(hours=shift_h)).replace(tzinfo=UTC)
    hi = lo + timedelta(hours=hours)
    for rule_id, (schedule, zone, rule_category) in enumerate(rules, start=1):
        text = json.dumps(schedule)
        parsed = schedule_adapter.validate_json(text)
        assert index.add(rule_id, ("v", rule_id), zone, rule_category, "rmf", text, created)
        if category is None or rule_category == category:
            recurrence = Recurrence(parsed, ZoneInfo(zone), created)
            for at in recurrence.between(lo - timedelta(microseconds=1), hi - timedelta(microseconds=1)):
                expected.append((at, task_id(rule_id, at), rule_id))
    index.seal()
    assert list(index.candidates(lo, hi, category, None)) == sorted(expected)


def test_counted_and_extra_date_rules_are_left_to_their_streams():
    index = PhaseIndex()
    daily = {"kind": "daily", "times": ["06:00"]}
    assert not index.add(1, 1, "UTC", None, "rmf", json.dumps({**daily, "count": 3}), created)
    extra = {**daily, "extra_dates": ["2026-02-01T10:00:00"]}
    assert not index.add(2, 1, "UTC", None, "rmf", json.dumps(extra), created)
    monthly = {"kind": "monthly", "days": [1], "times": ["06:00"]}
    assert not index.add(3, 1, "UTC", None, "rmf", json.dumps(monthly), created)
    assert index.add(4, 1, "UTC", None, "rmf", json.dumps(daily), created)
    index.seal()
    lo = datetime(2026, 2, 1, tzinfo=UTC)
    assert [rule for _, _, rule in index.candidates(lo, lo + timedelta(days=2), None, None)] == [4, 4]
    assert list(index.candidates(lo, lo + timedelta(days=2), None, "http")) == []
