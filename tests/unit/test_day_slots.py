"""An occurrence's day and slot, and where they lead in an edited series."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from task_scheduler.domain.recurrence import Recurrence, follow_slots
from task_scheduler.domain.schedule import parse_schedule

UTC = timezone.utc
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SINGAPORE = ZoneInfo("Asia/Singapore")


def daily(*times: str, tz=SINGAPORE) -> Recurrence:
    schedule = parse_schedule({"kind": "daily", "times": list(times), "start": "2026-01-01T00:00:00"})
    return Recurrence(schedule, tz, default_start=NOW)


def test_a_day_is_the_local_date_not_the_utc_one() -> None:
    # 07:00 in Singapore is 23:00 UTC the day before.
    assert daily("07:00", "19:00").on_day(date(2026, 1, 10)) == [
        datetime(2026, 1, 9, 23, tzinfo=UTC),
        datetime(2026, 1, 10, 11, tzinfo=UTC),
    ]


def test_follow_slots_keeps_day_and_slot_and_drops_what_is_gone() -> None:
    before = daily("07:00", "19:00")
    first, second = datetime(2026, 1, 9, 23, tzinfo=UTC), datetime(2026, 1, 10, 11, tzinfo=UTC)
    stray = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert follow_slots(before, daily("08:00", "20:00"), [first, second, stray]) == {
        first: datetime(2026, 1, 10, 0, tzinfo=UTC),
        second: datetime(2026, 1, 10, 12, tzinfo=UTC),
    }
    assert follow_slots(before, daily("08:00"), [second]) == {second: None}


def test_a_zone_change_keeps_the_local_date() -> None:
    before = daily("07:00", tz=ZoneInfo("UTC"))
    assert follow_slots(before, daily("07:00"), [datetime(2026, 1, 10, 7, tzinfo=UTC)]) == {
        datetime(2026, 1, 10, 7, tzinfo=UTC): datetime(2026, 1, 9, 23, tzinfo=UTC)
    }
