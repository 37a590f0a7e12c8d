"""Retention: old runs and finished tasks go in batches; what is recent or unfinished stays.
On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import timedelta

from task_scheduler.services.retention import Retention
from task_scheduler.storage.orm import RunRecord, TaskRecord
from tests.integration.conftest import T0
from tests.integration.test_queries_and_bulk import ad_hoc, run_of


def task(task_id: str, days_ago: float, status: str) -> dict:
    at = T0 - timedelta(days=days_ago)
    return {**ad_hoc(task_id, kind="http"), "scheduled_at": at, "original_at": at, "status": status}


async def test_old_runs_then_their_finished_tasks_go_in_batches(service):
    for i in range(7):  # 7 old runs of 7 old dispatched tasks, one recent
        await TaskRecord.create(**task(f"old-{i}", 40 + i, "dispatched"))
        await RunRecord.create(
            **{**run_of(f"old-{i}", None, "succeeded"), "started_at": T0 - timedelta(days=40 + i)}
        )
    await TaskRecord.create(**task("recent", 1, "dispatched"))
    await RunRecord.create(**{**run_of("recent", None, "succeeded"), "started_at": T0 - timedelta(days=1)})
    await TaskRecord.create(**task("old-skipped", 50, "skipped"))  # never ran
    await TaskRecord.create(**task("old-scheduled", 50, "scheduled"))  # not finished: kept
    await TaskRecord.create(**task("old-dispatching", 50, "dispatching"))

    purged = await Retention(
        service.services.store, service.clock, runs_days=30, tasks_days=30, batch=3
    ).run_pass()

    assert (purged.runs, purged.tasks) == (7, 8)
    assert await RunRecord.all().values_list("task_id", flat=True) == ["recent"]
    assert sorted(await TaskRecord.all().values_list("id", flat=True)) == [
        "old-dispatching",
        "old-scheduled",
        "recent",
    ]


async def test_tasks_that_ran_stay_while_their_runs_are_kept(service):
    await TaskRecord.create(**task("ran", 60, "failed"))
    await RunRecord.create(**{**run_of("ran", None, "failed"), "started_at": T0 - timedelta(days=60)})
    for i in range(4):
        await TaskRecord.create(**task(f"missed-{i}", 61 + i, "missed"))

    purged = await Retention(
        service.services.store, service.clock, runs_days=None, tasks_days=7, batch=2
    ).run_pass()

    assert (purged.runs, purged.tasks) == (0, 4)
    assert await TaskRecord.all().values_list("id", flat=True) == ["ran"]
    assert await RunRecord.all().count() == 1


async def test_without_settings_nothing_goes(service):
    await TaskRecord.create(**task("old", 400, "dispatched"))
    await RunRecord.create(**{**run_of("old", None, "succeeded"), "started_at": T0 - timedelta(days=400)})
    retention = Retention(service.services.store, service.clock, runs_days=None, tasks_days=None)
    assert not retention.active
    purged = await retention.run_pass()
    assert (purged.runs, purged.tasks) == (0, 0)
    assert await TaskRecord.all().count() == 1 == await RunRecord.all().count()
