"""Occurrences of every kind, pinned with fixed times in real zones (DST, month ends, leap years)."""

import time as wall_clock
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.domain.recurrence import Recurrence, validate_timezone
from task_scheduler.domain.schedule import parse_schedule

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SYDNEY = ZoneInfo("Australia/Sydney")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def recurrence(tz: ZoneInfo = NEW_YORK, **schedule: object) -> Recurrence:
    return Recurrence(parse_schedule(schedule), tz, CREATED)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(tz: ZoneInfo, text: str, fold: int = 0) -> datetime:
    """A wall-clock time in tz (fold picks the second pass of a repeated time), as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).astimezone(UTC)


def walls(tz: ZoneInfo, instants: list[datetime]) -> list[str]:
    """Instants as wall-clock text with offset, so DST shows in the assertion."""
    return [instant.astimezone(tz).isoformat() for instant in instants]


def window(rule: Recurrence, after: str, until: str, **kwargs: bool) -> list[datetime]:
    return list(rule.between(utc(after), utc(until), **kwargs))


# once and interval


def test_once_fires_at_its_wall_clock_time() -> None:
    rule = recurrence(kind="once", at="2026-12-24T18:00:00")
    assert window(rule, "2026-01-01", "2027-01-01") == [utc("2026-12-24T23:00:00")]
    assert rule.first() == utc("2026-12-24T23:00:00")
    assert rule.contains(utc("2026-12-24T23:00:00"))
    assert rule.next_after(utc("2026-12-24T23:00:00"), 5) == []


def test_once_in_the_past_of_its_start_never_fires() -> None:
    rule = Recurrence(parse_schedule({"kind": "once", "at": "2025-06-01T12:00:00Z"}), NEW_YORK, CREATED)
    assert rule.first() is None


def test_interval_counts_real_time_across_spring_forward() -> None:
    rule = recurrence(kind="interval", every=90, unit="minutes", start="2026-03-07T23:00:00")
    assert walls(NEW_YORK, rule.next_after(utc("2026-03-08T04:00:00"), 4)) == [
        "2026-03-08T00:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:30:00-04:00",
        "2026-03-08T06:00:00-04:00",
    ]


def test_interval_counts_real_time_across_fall_back() -> None:
    rule = recurrence(kind="interval", every=1, unit="hours", start="2026-11-01T00:00:00")
    assert walls(NEW_YORK, rule.next_after(utc("2026-11-01T04:00:00"), 3)) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_interval_window_far_from_start_is_computed_arithmetically() -> None:
    rule = recurrence(kind="interval", every=7, unit="seconds", start="2026-01-01T00:00:00Z")
    found = window(rule, "2076-01-01T00:00:00", "2076-01-01T00:01:00", inclusive=True)
    assert found[0] == utc("2076-01-01T00:00:06")
    assert len(found) == 8
    assert all((instant - utc("2026-01-01T00:00:00")).total_seconds() % 7 == 0 for instant in found)


def test_interval_count_and_end() -> None:
    counted = recurrence(kind="interval", every=10, unit="minutes", start="2026-01-01T00:00:00Z", count=3)
    assert window(counted, "2025-01-01", "2027-01-01") == [
        utc("2026-01-01T00:00:00"),
        utc("2026-01-01T00:10:00"),
        utc("2026-01-01T00:20:00"),
    ]
    ended = recurrence(
        kind="interval", every=10, unit="minutes", start="2026-01-01T00:00:00Z", end="2026-01-01T00:20:00Z"
    )
    assert window(ended, "2025-01-01", "2027-01-01") == window(counted, "2025-01-01", "2027-01-01")


# DST for wall-clock kinds


def test_new_york_spring_forward_moves_missing_times_past_the_gap_and_merges_collisions() -> None:
    rule = recurrence(kind="daily", times=["01:30", "02:30", "03:30"], start="2026-03-07T00:00:00")
    assert walls(NEW_YORK, window(rule, "2026-03-08T05:00:00", "2026-03-09T05:00:00")) == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:30:00-04:00",
    ]


def test_new_york_fall_back_runs_a_repeated_time_once_at_the_first_pass() -> None:
    rule = recurrence(kind="daily", times=["01:30"], start="2026-10-30T00:00:00")
    assert walls(NEW_YORK, window(rule, "2026-10-31T00:00:00", "2026-11-03T00:00:00")) == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    assert not rule.contains(local(NEW_YORK, "2026-11-01T01:30:00", fold=1))


def test_gap_times_are_sorted_among_the_times_just_past_the_gap() -> None:
    rule = recurrence(kind="daily", times=["02:15", "02:45", "03:00", "03:30"], start="2026-03-08T00:00:00")
    assert walls(NEW_YORK, window(rule, "2026-03-08T00:00:00", "2026-03-08T12:00:00")) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:15:00-04:00",
        "2026-03-08T03:30:00-04:00",
        "2026-03-08T03:45:00-04:00",
    ]


def test_windows_ending_inside_the_gap_mapping_stay_exact() -> None:
    rule = recurrence(kind="daily", times=["02:45", "03:00"], start="2026-03-08T00:00:00")
    assert window(rule, "2026-03-08T07:00:00", "2026-03-08T07:30:00") == []
    assert window(rule, "2026-03-08T07:00:00", "2026-03-08T07:45:00") == [utc("2026-03-08T07:45:00")]
    assert window(rule, "2026-03-08T06:59:59", "2026-03-08T07:45:00") == [
        utc("2026-03-08T07:00:00"),
        utc("2026-03-08T07:45:00"),
    ]


def test_berlin_transitions() -> None:
    rule = recurrence(BERLIN, kind="daily", times=["02:30"], start="2026-03-28T00:00:00")
    found = walls(BERLIN, window(rule, "2026-03-28T00:00:00", "2026-03-31T00:00:00"))
    assert found == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    rule = recurrence(BERLIN, kind="weekly", weekdays=["sun"], times=["02:30"], start="2026-10-01T00:00:00")
    assert walls(BERLIN, rule.next_after(utc("2026-10-20T00:00:00"), 2)) == [
        "2026-10-25T02:30:00+02:00",
        "2026-11-01T02:30:00+01:00",
    ]


def test_lord_howe_half_hour_transitions() -> None:
    # 2026: clocks go back from 02:00 to 01:30 on 5 April and forward from 02:00 to 02:30 on 4 October.
    first_pass = local(LORD_HOWE, "2026-04-05T01:45:00")
    assert local(LORD_HOWE, "2026-04-05T01:45:00", fold=1) - first_pass == timedelta(minutes=30)
    rule = recurrence(LORD_HOWE, kind="daily", times=["01:45", "02:15"], start="2026-04-04T00:00:00")
    assert walls(LORD_HOWE, window(rule, "2026-04-04T12:00:00", "2026-04-05T12:00:00")) == [
        "2026-04-05T01:45:00+11:00",
        "2026-04-05T02:15:00+10:30",
    ]
    assert walls(LORD_HOWE, window(rule, "2026-10-03T12:00:00", "2026-10-04T12:00:00")) == [
        "2026-10-04T01:45:00+10:30",
        "2026-10-04T02:45:00+11:00",
    ]


def test_sydney_southern_hemisphere_transitions() -> None:
    rule = recurrence(SYDNEY, kind="monthly", days=[4, 5], times=["02:30"], start="2026-01-01T00:00:00")
    assert walls(SYDNEY, window(rule, "2026-04-03T00:00:00", "2026-04-06T00:00:00")) == [
        "2026-04-04T02:30:00+11:00",
        "2026-04-05T02:30:00+11:00",
    ]
    assert walls(SYDNEY, window(rule, "2026-10-02T00:00:00", "2026-10-05T00:00:00")) == [
        "2026-10-04T03:30:00+11:00",
        "2026-10-05T02:30:00+11:00",
    ]


def test_cron_in_the_repeated_hour_fires_each_wall_clock_minute_once() -> None:
    rule = recurrence(kind="cron", expression="*/20 1 * * *", start="2026-10-31T00:00:00")
    assert walls(NEW_YORK, window(rule, "2026-11-01T04:00:00", "2026-11-01T08:00:00")) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:20:00-04:00",
        "2026-11-01T01:40:00-04:00",
    ]


def test_hourly_rrule_steps_through_wall_clock_hours() -> None:
    rule = recurrence(kind="rrule", rrule="FREQ=HOURLY;INTERVAL=1", start="2026-03-08T00:15:00")
    assert walls(NEW_YORK, rule.next_after(utc("2026-03-08T05:00:00"), 3)) == [
        "2026-03-08T00:15:00-05:00",
        "2026-03-08T01:15:00-05:00",
        "2026-03-08T03:15:00-04:00",
    ]


def test_aware_start_in_the_second_pass_excludes_the_first() -> None:
    start = local(NEW_YORK, "2026-11-01T01:10:00", fold=1).isoformat()
    rule = recurrence(kind="daily", times=["01:30", "02:00"], start=start)
    assert walls(NEW_YORK, [rule.first()]) == ["2026-11-01T02:00:00-05:00"]


# calendar kinds


def test_daily_every_n_days_counts_from_the_start_date() -> None:
    rule = recurrence(kind="daily", every=3, times=["07:00"], start="2026-01-01T08:00:00")
    assert walls(NEW_YORK, rule.next_after(utc("2025-01-01T00:00:00"), 3)) == [
        "2026-01-04T07:00:00-05:00",
        "2026-01-07T07:00:00-05:00",
        "2026-01-10T07:00:00-05:00",
    ]


def test_weekly_every_two_weeks_counts_from_the_week_of_start() -> None:
    # 2026-01-07 is a Wednesday: its week (from Monday 5 January) is week 0.
    rule = recurrence(
        kind="weekly", every=2, weekdays=["mon", "fri"], times=["07:00"], start="2026-01-07T00:00:00"
    )
    assert [instant.date().isoformat() for instant in rule.next_after(utc("2026-01-01"), 5)] == [
        "2026-01-09",
        "2026-01-19",
        "2026-01-23",
        "2026-02-02",
        "2026-02-06",
    ]


def test_monthly_days_skip_months_without_them_and_negative_days_count_from_the_end() -> None:
    rule = recurrence(kind="monthly", days=[31], times=["07:00"], start="2026-01-01T00:00:00")
    assert [instant.date().isoformat() for instant in rule.next_after(utc("2026-01-01"), 4)] == [
        "2026-01-31",
        "2026-03-31",
        "2026-05-31",
        "2026-07-31",
    ]
    last = recurrence(kind="monthly", days=[-1], times=["07:00"], start="2028-01-01T00:00:00")
    assert [instant.date().isoformat() for instant in last.next_after(utc("2028-01-01"), 4)] == [
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
        "2028-04-30",
    ]
    second_to_last = recurrence(kind="monthly", days=[-2], times=["07:00"], start="2027-02-01T00:00:00")
    assert second_to_last.first() == local(NEW_YORK, "2027-02-27T07:00:00")


@pytest.mark.parametrize(
    ("days", "february_2028", "february_2027"),
    [([29], ["2028-02-29"], []), ([30], [], []), ([31], [], []), ([-1], ["2028-02-29"], ["2027-02-28"])],
)
def test_february_in_leap_and_common_years(
    days: list[int], february_2028: list[str], february_2027: list[str]
) -> None:
    rule = recurrence(kind="monthly", days=days, times=["12:00"], start="2027-01-01T00:00:00")
    dates = [instant.date().isoformat() for instant in window(rule, "2027-01-01", "2029-01-01")]
    assert [day for day in dates if day.startswith("2028-02")] == february_2028
    assert [day for day in dates if day.startswith("2027-02")] == february_2027


def test_monthly_days_landing_on_the_same_date_fire_once() -> None:
    rule = recurrence(kind="monthly", days=[30, -1], times=["07:00"], start="2026-04-01T00:00:00")
    assert [instant.date().isoformat() for instant in rule.next_after(utc("2026-04-01"), 3)] == [
        "2026-04-30",
        "2026-05-30",
        "2026-05-31",
    ]


def test_monthly_every_three_months_far_from_start() -> None:
    rule = recurrence(kind="monthly", every=3, days=[15], times=["07:00"], start="2026-02-01T00:00:00")
    assert [instant.date().isoformat() for instant in rule.next_after(utc("2076-01-01"), 3)] == [
        "2076-02-15",
        "2076-05-15",
        "2076-08-15",
    ]


def test_nth_weekday_including_fifth_and_last() -> None:
    second = recurrence(
        kind="monthly_weekday", weekday="tue", nth=2, times=["10:00"], start="2026-01-01T00:00:00"
    )
    assert [i.date().isoformat() for i in second.next_after(utc("2026-01-01"), 3)] == [
        "2026-01-13",
        "2026-02-10",
        "2026-03-10",
    ]
    fifth = recurrence(
        kind="monthly_weekday", weekday="tue", nth=5, times=["10:00"], start="2026-01-01T00:00:00"
    )
    assert [i.date().isoformat() for i in fifth.between(utc("2026-01-01"), utc("2027-01-01"))] == [
        "2026-03-31",
        "2026-06-30",
        "2026-09-29",
        "2026-12-29",
    ]
    last = recurrence(
        kind="monthly_weekday", weekday="fri", nth=-1, times=["10:00"], start="2026-01-01T00:00:00"
    )
    assert [i.date().isoformat() for i in last.next_after(utc("2026-01-01"), 3)] == [
        "2026-01-30",
        "2026-02-27",
        "2026-03-27",
    ]


# cron


def test_cron_steps_ranges_and_weekday_names() -> None:
    rule = recurrence(kind="cron", expression="*/15 8-18 * * mon-fri", start="2026-01-01T00:00:00")
    friday = window(rule, "2026-01-02T00:00:00", "2026-01-03T00:00:00")
    assert len(friday) == 44
    assert walls(NEW_YORK, [friday[0], friday[-1]]) == [
        "2026-01-02T08:00:00-05:00",
        "2026-01-02T18:45:00-05:00",
    ]
    assert window(rule, "2026-01-03T00:00:00", "2026-01-05T05:00:00") == []


def test_cron_either_day_field_matches_when_both_are_restricted() -> None:
    rule = recurrence(kind="cron", expression="0 9 13 * fri", start="2026-01-01T00:00:00")
    assert [i.day for i in window(rule, "2026-01-01", "2026-02-01")] == [2, 9, 13, 16, 23, 30]
    assert [i.day for i in window(rule, "2026-02-01", "2026-03-01")] == [6, 13, 20, 27]


def test_cron_star_step_day_field_still_ands_with_the_weekday() -> None:
    rule = recurrence(kind="cron", expression="0 9 */2 * mon", start="2026-01-01T00:00:00")
    assert [i.day for i in window(rule, "2026-01-01", "2026-02-01")] == [5, 19]


def test_cron_month_names_and_sunday_as_seven() -> None:
    rule = recurrence(kind="cron", expression="30 12 * JAN,jul 7", start="2026-01-01T00:00:00")
    assert [i.date().isoformat() for i in rule.next_after(utc("2026-01-20"), 3)] == [
        "2026-01-25",
        "2026-07-05",
        "2026-07-12",
    ]


@pytest.mark.parametrize(
    ("macro", "first"),
    [
        ("@hourly", "2026-01-01T01:00:00-05:00"),
        ("@daily", "2026-01-02T00:00:00-05:00"),
        ("@weekly", "2026-01-04T00:00:00-05:00"),
        ("@monthly", "2026-02-01T00:00:00-05:00"),
        ("@yearly", "2027-01-01T00:00:00-05:00"),
    ],
)
def test_cron_macros(macro: str, first: str) -> None:
    rule = recurrence(kind="cron", expression=macro, start="2026-01-01T00:00:01")
    assert walls(NEW_YORK, [rule.first()]) == [first]


def test_leap_day_cron_is_found_across_a_skipped_century_leap_year() -> None:
    rule = recurrence(kind="cron", expression="0 0 29 2 *", start="2097-03-01T00:00:00")
    assert walls(NEW_YORK, [rule.first()]) == ["2104-02-29T00:00:00-05:00"]


# rrule


def test_rrule_last_friday_of_each_month() -> None:
    rule = recurrence(
        kind="rrule", rrule="FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=16;BYMINUTE=0", start="2026-01-01T00:00:00"
    )
    assert walls(NEW_YORK, rule.next_after(utc("2026-01-01"), 3)) == [
        "2026-01-30T16:00:00-05:00",
        "2026-02-27T16:00:00-05:00",
        "2026-03-27T16:00:00-04:00",
    ]


def test_rrule_bysetpos_last_workday() -> None:
    rule = recurrence(
        kind="rrule", rrule="RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", start="2026-01-01T18:00:00"
    )
    assert [i.date().isoformat() for i in rule.next_after(utc("2026-01-01"), 6)] == [
        "2026-01-30",
        "2026-02-27",
        "2026-03-31",
        "2026-04-30",
        "2026-05-29",
        "2026-06-30",
    ]
    assert walls(NEW_YORK, [rule.first()]) == ["2026-01-30T18:00:00-05:00"]


def test_rrule_takes_missing_parts_from_start_even_far_from_it() -> None:
    rule = recurrence(kind="rrule", rrule="FREQ=YEARLY", start="2026-07-04T09:30:00")
    assert walls(NEW_YORK, rule.next_after(utc("2090-01-01"), 2)) == [
        "2090-07-04T09:30:00-04:00",
        "2091-07-04T09:30:00-04:00",
    ]
    biweekly = recurrence(kind="rrule", rrule="FREQ=WEEKLY;INTERVAL=2", start="2026-01-07T09:00:00")
    found = biweekly.next_after(utc("2076-01-01"), 3)
    assert all(instant.astimezone(NEW_YORK).weekday() == 2 for instant in found)
    assert all((instant.date() - datetime(2026, 1, 7).date()).days % 14 == 0 for instant in found)


def test_rrule_week_start_matters_with_interval() -> None:
    monday = recurrence(kind="rrule", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU", start="2026-01-06T10:00:00")
    sunday = recurrence(
        kind="rrule", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU", start="2026-01-06T10:00:00"
    )
    assert [i.date().isoformat() for i in monday.next_after(utc("2026-01-01"), 3)] == [
        "2026-01-06",
        "2026-01-11",
        "2026-01-20",
    ]
    assert [i.date().isoformat() for i in sunday.next_after(utc("2026-01-01"), 3)] == [
        "2026-01-06",
        "2026-01-18",
        "2026-01-20",
    ]


# except, extra, count, end


def test_except_dates_remove_everything_on_that_local_date() -> None:
    rule = recurrence(
        kind="daily",
        times=["07:00", "23:30"],
        start="2026-12-23T00:00:00",
        except_dates=["2026-12-25"],
        extra_dates=["2026-12-25T12:00:00", "2026-12-26T12:00:00"],
    )
    assert walls(NEW_YORK, window(rule, "2026-12-24T05:00:00", "2026-12-27T05:00:00")) == [
        "2026-12-24T07:00:00-05:00",
        "2026-12-24T23:30:00-05:00",
        "2026-12-26T07:00:00-05:00",
        "2026-12-26T12:00:00-05:00",
        "2026-12-26T23:30:00-05:00",
    ]


def test_count_is_taken_before_except_dates_and_extra_dates_come_on_top() -> None:
    rule = recurrence(
        kind="daily",
        times=["07:00"],
        start="2026-01-01T00:00:00",
        count=5,
        except_dates=["2026-01-02"],
        extra_dates=["2026-01-10T08:00:00", "2026-01-01T07:00:00"],
    )
    assert [i.astimezone(NEW_YORK).isoformat() for i in window(rule, "2025-01-01", "2027-01-01")] == [
        "2026-01-01T07:00:00-05:00",
        "2026-01-03T07:00:00-05:00",
        "2026-01-04T07:00:00-05:00",
        "2026-01-05T07:00:00-05:00",
        "2026-01-10T08:00:00-05:00",
    ]


def test_count_collapsed_dst_occurrences_count_once() -> None:
    rule = recurrence(kind="daily", times=["02:30", "03:30"], start="2026-03-08T00:00:00", count=3)
    assert walls(NEW_YORK, window(rule, "2026-01-01", "2027-01-01")) == [
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-09T03:30:00-04:00",
    ]


def test_end_is_inclusive_and_bounds_extra_dates() -> None:
    rule = recurrence(
        kind="daily",
        times=["07:00"],
        start="2026-01-01T00:00:00",
        end="2026-01-03T07:00:00",
        extra_dates=["2026-01-02T09:00:00", "2026-01-05T09:00:00", "2025-12-31T09:00:00"],
    )
    assert walls(NEW_YORK, window(rule, "2025-01-01", "2027-01-01")) == [
        "2026-01-01T07:00:00-05:00",
        "2026-01-02T07:00:00-05:00",
        "2026-01-02T09:00:00-05:00",
        "2026-01-03T07:00:00-05:00",
    ]


def test_start_is_inclusive_and_none_falls_before_it() -> None:
    rule = recurrence(kind="daily", times=["07:00", "08:00"], start="2026-01-01T08:00:00")
    assert rule.first() == local(NEW_YORK, "2026-01-01T08:00:00")


def test_default_start_is_used_when_the_schedule_has_none() -> None:
    schedule = parse_schedule({"kind": "daily", "times": ["07:00"]})
    rule = Recurrence(schedule, NEW_YORK, datetime(2026, 5, 1, 12, 0, 0, 999, tzinfo=UTC))
    assert rule.first() == local(NEW_YORK, "2026-05-02T07:00:00")
    interval = Recurrence(
        parse_schedule({"kind": "interval", "every": 1, "unit": "hours"}),
        NEW_YORK,
        utc("2026-05-01T12:00:00.5004"),
    )
    assert interval.first() == utc("2026-05-01T12:00:00.500")


def test_milliseconds_are_kept_by_once_interval_and_extra_dates() -> None:
    once = recurrence(kind="once", at="2026-05-01T12:00:00.2509Z")
    assert once.first() == utc("2026-05-01T12:00:00.250")
    interval = recurrence(kind="interval", every=10, unit="seconds", start="2026-05-01T12:00:00.125Z")
    assert list(interval.between(utc("2026-05-01T12:00:00"), utc("2026-05-01T12:00:20"))) == [
        utc("2026-05-01T12:00:00.125"),
        utc("2026-05-01T12:00:10.125"),
    ]
    assert interval.contains(utc("2026-05-01T12:00:10.125"))
    assert not interval.contains(utc("2026-05-01T12:00:10"))
    extra = recurrence(
        kind="daily", times=["07:00"], start="2026-05-01", extra_dates=["2026-05-01T09:00:00.75"]
    )
    assert utc("2026-05-01T13:00:00.750") in list(extra.between(utc("2026-05-01"), utc("2026-05-02")))


def test_wall_clock_kinds_fire_at_whole_seconds_after_a_start_with_milliseconds() -> None:
    rule = recurrence(kind="daily", times=["07:00"], start="2026-05-01T07:00:00.001")
    assert rule.first() == local(NEW_YORK, "2026-05-02T07:00:00")


# queries


def test_between_bounds_and_inclusive() -> None:
    rule = recurrence(kind="daily", times=["07:00"], start="2026-01-01T00:00:00")
    at = local(NEW_YORK, "2026-01-02T07:00:00")
    assert list(rule.between(at, at + timedelta(days=1))) == [at + timedelta(days=1)]
    assert list(rule.between(at, at + timedelta(days=1), inclusive=True)) == [at, at + timedelta(days=1)]
    assert list(rule.between(at, at)) == []
    assert list(rule.between(at + timedelta(days=1), at)) == []


def test_contains() -> None:
    rule = recurrence(kind="weekly", weekdays=["mon"], times=["07:00"], start="2026-01-01T00:00:00")
    assert rule.contains(local(NEW_YORK, "2026-01-05T07:00:00"))
    assert not rule.contains(local(NEW_YORK, "2026-01-05T07:00:01"))
    assert not rule.contains(local(NEW_YORK, "2026-01-06T07:00:00"))
    assert not rule.contains(local(NEW_YORK, "2025-12-29T07:00:00"))


def test_naive_arguments_are_rejected() -> None:
    rule = recurrence(kind="daily", times=["07:00"])
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        rule.between(datetime(2026, 1, 1), utc("2026-02-01"))
    with pytest.raises(ValueError, match="until must be timezone-aware"):
        rule.between(utc("2026-01-01"), datetime(2026, 2, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        rule.next_after(datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        rule.contains(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="default_start must be timezone-aware"):
        Recurrence(parse_schedule({"kind": "daily", "times": ["07:00"]}), NEW_YORK, datetime(2026, 1, 1))


def test_results_are_utc() -> None:
    rule = recurrence(BERLIN, kind="daily", times=["07:00"], start="2026-01-01T00:00:00")
    assert all(instant.tzinfo is UTC for instant in rule.next_after(utc("2026-01-01"), 3))


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "cron", "expression": "0 0 30 2 *"},
        {"kind": "cron", "expression": "0 0 31 4,6,9,11 *"},
        {"kind": "rrule", "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"},
        {"kind": "monthly", "every": 12, "days": [31], "times": ["07:00"], "start": "2026-04-01T00:00:00"},
        {
            "kind": "monthly_weekday",
            "weekday": "tue",
            "nth": 5,
            "times": ["10:00"],
            "start": "2026-04-01T00:00:00",
            "end": "2026-06-29T00:00:00",
        },
        {"kind": "daily", "times": ["07:00"], "start": "2026-01-01T08:00:00", "end": "2026-01-01T09:00:00"},
        {
            "kind": "daily",
            "times": ["07:00"],
            "start": "2026-01-01T00:00:00",
            "count": 3,
            "except_dates": ["2026-01-01", "2026-01-02", "2026-01-03"],
        },
    ],
)
def test_rules_that_never_fire_answer_quickly(schedule: dict) -> None:
    began = wall_clock.perf_counter()
    rule = recurrence(**({"start": "2026-01-01T00:00:00"} | schedule))
    assert rule.first() is None
    assert list(rule.between(utc("2026-01-01"), utc("2126-01-01"))) == []
    assert rule.next_after(utc("2026-01-01"), 5) == []
    assert not rule.contains(utc("2026-02-28T05:00:00"))
    assert wall_clock.perf_counter() - began < 1  # generous: a runaway search takes seconds


def test_far_future_windows_cost_what_they_hold() -> None:
    """Smoke check by counting: each window 50 years on holds exactly what it should."""
    minutely = recurrence(kind="cron", expression="* * * * *", start="2026-01-01T00:00:00")
    assert len(window(minutely, "2076-05-01T00:00:00", "2076-05-01T01:00:00")) == 60
    daily = recurrence(kind="daily", every=3, times=["07:00"], start="2026-01-01T00:00:00")
    found = window(daily, "2076-05-01T00:00:00", "2076-05-31T00:00:00")
    assert len(found) == 10
    assert all((i.astimezone(NEW_YORK).date() - datetime(2026, 1, 1).date()).days % 3 == 0 for i in found)
    assert found == [i for i in window(daily, "2025-12-31", "2076-05-31T00:00:00") if i > utc("2076-05-01")]


def test_validate_timezone() -> None:
    assert validate_timezone("Australia/Lord_Howe") == LORD_HOWE
    for bad in ("Mars/Olympus_Mons", "", "../etc/passwd", None):
        with pytest.raises(ValueError, match="unknown time zone"):
            validate_timezone(bad)


def test_an_rrule_set_fires_at_each_rules_times_once() -> None:
    schedule = parse_schedule(
        {
            "kind": "rrule",
            "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0;BYSECOND=0\n"
            "FREQ=DAILY;BYHOUR=9,10;BYMINUTE=0;BYSECOND=0",
            "start": "2026-01-05T00:00:00",
        }
    )
    series = Recurrence(
        schedule, ZoneInfo("Asia/Singapore"), default_start=datetime(2026, 1, 1, tzinfo=timezone.utc)
    )
    after = datetime(2026, 1, 4, 16, tzinfo=timezone.utc)  # Monday 00:00 in Singapore
    assert series.next_after(after, 3) == [
        datetime(2026, 1, 5, 1, tzinfo=timezone.utc),
        datetime(2026, 1, 5, 2, tzinfo=timezone.utc),  # Monday 10:00 from both rules: once
        datetime(2026, 1, 6, 1, tzinfo=timezone.utc),
    ]


# A start just past a gap that ends at midnight: America/Nuuk jumps from Saturday
# 2027-03-27 23:00 to Sunday 00:00, so Saturday 23:30 runs at Sunday 00:30, after the start.
NUUK = ZoneInfo("America/Nuuk")
SATURDAY_2330 = {
    "weekly": {"kind": "weekly", "weekdays": ["sat"], "times": ["23:30"]},
    "weekly every 2": {"kind": "weekly", "every": 2, "weekdays": ["sat"], "times": ["23:30"]},
    "daily": {"kind": "daily", "times": ["23:30"]},
    "monthly": {"kind": "monthly", "days": [27], "times": ["23:30"]},
    "monthly_weekday": {"kind": "monthly_weekday", "weekday": "sat", "nth": -1, "times": ["23:30"]},
    "cron": {"kind": "cron", "expression": "30 23 * * 6"},
    "rrule": {"kind": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=SA;BYHOUR=23;BYMINUTE=30;BYSECOND=0"},
}


@pytest.mark.parametrize("kind", SATURDAY_2330)
def test_a_gap_time_pushed_past_the_start_day_runs_after_the_start(kind: str) -> None:
    rule = recurrence(NUUK, start="2027-03-28T00:00:00", **SATURDAY_2330[kind])
    assert rule.first() == utc("2027-03-28T01:30:00")
    assert rule.next_after(utc("2027-01-01T00:00:00"), 1) == [utc("2027-03-28T01:30:00")]
    assert window(rule, "2027-03-28T01:00:00", "2027-03-28T02:00:00", inclusive=True) == [
        utc("2027-03-28T01:30:00")
    ]


def test_a_day_before_the_start_outside_the_series_stays_out_across_a_gap() -> None:
    """Every 2 days from Sunday: the Saturday before is not a day of the series."""
    rule = recurrence(NUUK, kind="daily", every=2, times=["23:30"], start="2027-03-28T00:00:00")
    assert walls(NUUK, rule.next_after(utc("2027-01-01T00:00:00"), 2)) == [
        "2027-03-28T23:30:00-01:00",
        "2027-03-30T23:30:00-01:00",
    ]


def test_a_start_later_in_the_day_keeps_earlier_times_of_that_day_out() -> None:
    rule = recurrence(kind="weekly", weekdays=["mon"], times=["09:00", "17:00"], start="2026-01-05T12:00:00")
    assert walls(NEW_YORK, rule.next_after(utc("2026-01-01T00:00:00"), 2)) == [
        "2026-01-05T17:00:00-05:00",
        "2026-01-12T09:00:00-05:00",
    ]
