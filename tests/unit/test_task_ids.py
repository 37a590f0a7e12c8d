from datetime import datetime, timedelta, timezone

import pytest

from task_scheduler.domain.tasks import parse_task_id, task_id


def test_round_trip_in_utc():
    local = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    text = task_id(42, local)
    assert text == "42-20260329T013000Z"
    assert parse_task_id(text) == (42, local)


@pytest.mark.parametrize(
    "text", ["", "42", "x-20260329T013000Z", "42-20261329T013000Z", "42-20260329T013000"]
)
def test_not_a_task_id(text):
    assert parse_task_id(text) is None


def test_naive_time_refused():
    with pytest.raises(ValueError):
        task_id(1, datetime(2026, 1, 1))
