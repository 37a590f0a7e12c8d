from datetime import datetime, timedelta, timezone

import pytest

from task_scheduler.domain.tasks import parse_task_id, task_id


def test_round_trip_in_utc():
    local = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    text = task_id(42, local)
    assert text == "42-20260329T013000Z"
    assert parse_task_id(text) == (42, local)


def test_milliseconds_appear_only_when_not_zero():
    at = datetime(2026, 3, 29, 1, 30, 0, 250_999, tzinfo=timezone.utc)
    assert task_id(42, at) == "42-20260329T013000.250Z"
    assert parse_task_id("42-20260329T013000.250Z") == (42, at.replace(microsecond=250_000))
    assert task_id(42, at.replace(microsecond=999)) == "42-20260329T013000Z"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "42",
        "x-20260329T013000Z",
        "42-20261329T013000Z",
        "42-20260329T013000",
        "42-20260329T013000.000Z",  # a second spelling of 42-20260329T013000Z
        "42-20260329T013000.25Z",
        "42-20260329T013000.2500Z",
    ],
)
def test_not_a_task_id(text):
    assert parse_task_id(text) is None


def test_naive_time_refused():
    with pytest.raises(ValueError):
        task_id(1, datetime(2026, 1, 1))
