"""Recording outcomes: in groups, in few statements, and never lost, on each database."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from tortoise.exceptions import OperationalError

from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.storage.orm import RunRecord, TaskRecord
from task_scheduler.storage.store import Settlement, Store
from tests.integration.conftest import T0
from tests.integration.test_claims import task
from tests.integration.test_dispatch import create, engine, first_id, fleet, runs_of  # noqa: F401

LEASE = T0 + timedelta(seconds=10)


class Statements(logging.Handler):
    """Counts the statements Tortoise sends (each logged once, as ``query: values``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s":
            self.sent.append(str(record.args[0]))


@pytest.fixture
def statements() -> Any:
    counter, log = Statements(), logging.getLogger("tortoise.db_client")
    level = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(counter)
    yield counter
    log.removeHandler(counter)
    log.setLevel(level)


def succeeded(task_id: str, attempt: int = 1) -> Settlement:
    at = T0 + timedelta(seconds=1)
    run = {
        "task_id": task_id,
        "rule_id": None,
        "attempt": attempt,
        "started_at": T0,
        "finished_at": at,
        "duration_ms": 1000.0,
        "outcome": "succeeded",
        "fleet_task_id": f"fleet-{task_id}",
        "response": {"state": {"booking": {"id": f"fleet-{task_id}"}}},
        "error": None,
        "replica": "replica-a",
    }
    return Settlement(
        task_id, None, TaskStatus.dispatched.value, None, at, fleet_task_id=f"fleet-{task_id}", run=run
    )


async def test_many_outcomes_are_recorded_in_one_transaction_of_few_statements(
    service, monkeypatch, statements
):
    store: Store = service.services.store
    await store.insert_tasks([task(i, due_in_s=0, leased_until_s=None) for i in range(40)])
    claimed = await store.claim_due(T0, "replica-a", LEASE, 40)
    assert len(claimed) == 40
    transactions = []
    opened = store.transaction
    monkeypatch.setattr(store, "transaction", lambda: transactions.append(1) or opened())
    outcomes = [succeeded(row.id) for row in claimed[:30]]
    outcomes += [
        Settlement(
            row.id,
            None,
            TaskStatus.scheduled.value,
            "held",
            T0,
            due_at=T0 + timedelta(seconds=8),
            unsent=True,
        )
        for row in claimed[30:]
    ]
    statements.sent.clear()
    settled = await store.settle(outcomes, "replica-a")
    dialect = TaskRecord._meta.db.capabilities.dialect
    # PostgreSQL: every task's change where still ours, and every run, in one statement.
    # SQLite: those two in a transaction. MySQL: which are still ours, the changes, the runs.
    assert (len(transactions), len(statements.sent)) == {"postgres": (0, 1), "sqlite": (1, 2)}.get(
        dialect, (1, 3)
    ), statements.sent
    assert all(result is not None for result in settled)
    rows = {row.id: row for row in await TaskRecord.all()}
    for outcome in outcomes[:30]:
        row = rows[outcome.task_id]
        assert (row.status, row.fleet_task_id, row.lease_owner, row.attempts) == (
            "dispatched",
            f"fleet-{row.id}",
            None,
            1,
        )
    for outcome in outcomes[30:]:
        row = rows[outcome.task_id]
        assert (row.status, row.due_at, row.attempts, row.status_reason) == (
            "scheduled",
            T0 + timedelta(seconds=8),
            0,
            "held",
        )
    runs = await RunRecord.all()
    assert sorted(run.task_id for run in runs) == sorted(o.task_id for o in outcomes[:30])
    assert runs[0].response == {"state": {"booking": {"id": f"fleet-{runs[0].task_id}"}}}
    assert runs[0].started_at == T0 and runs[0].finished_at == T0 + timedelta(seconds=1)


async def test_a_lost_claim_keeps_its_run_but_not_its_status(service):
    store: Store = service.services.store
    await store.insert_tasks([task(i, due_in_s=0, leased_until_s=None) for i in range(2)])
    mine, theirs = await store.claim_due(T0, "replica-a", LEASE, 2)
    await TaskRecord.filter(id=theirs.id).update(lease_owner="replica-b")
    settled = await store.settle([succeeded(mine.id), succeeded(theirs.id)], "replica-a")
    assert settled[0] is not None and settled[1] is None
    assert (await TaskRecord.get(id=theirs.id)).status == "dispatching"
    assert sorted(run.task_id for run in await RunRecord.all()) == sorted([mine.id, theirs.id])


async def test_failures_in_a_group_count_in_order_and_pause_the_rule(engine, fleet):  # noqa: F811
    rule = await create(engine, policy={"max_attempts": 2, "misfire_grace_s": 1})
    store: Store = engine.services.store
    await TaskRecord.filter(rule_id=rule["id"]).update(due_at=T0)
    claimed = await store.claim_due(T0, "replica-a", LEASE, 3)
    assert len(claimed) == 3

    def outcome(row: TaskRecord, failed: bool) -> Settlement:
        status = TaskStatus.failed if failed else TaskStatus.dispatched
        return Settlement(row.id, row.rule_id, status.value, None, T0, rule_failed=failed, pause_after=2)

    # fail, succeed (the count starts again), fail: one in a row
    first = await store.settle(
        [outcome(claimed[0], True), outcome(claimed[1], False), outcome(claimed[2], True)], "replica-a"
    )
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["consecutive_failures"] == 1 and status["paused"] is False
    assert all(result is not None and result.paused_reason is None for result in first)
    await TaskRecord.filter(rule_id=rule["id"]).update(status="scheduled", due_at=T0)
    again = await store.claim_due(T0, "replica-a", LEASE, 2)
    second = await store.settle([outcome(row, True) for row in again], "replica-a")
    assert [result.paused_reason for result in second] == [None, "3 occurrences in a row failed"]
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["consecutive_failures"] == 3 and status["paused"] is True


async def test_a_pass_of_many_tasks_records_them_in_a_few_groups(engine, fleet, monkeypatch):  # noqa: F811
    for n in range(20):
        await create(engine, name=f"rule {n}")
    store: Store = engine.services.store
    groups: list[int] = []
    settle = store.settle

    async def counted(outcomes, owner):
        groups.append(len(outcomes))
        return await settle(outcomes, owner)

    monkeypatch.setattr(store, "settle", counted)
    engine.clock.advance(seconds=60)
    assert await engine.dispatch() == 20
    assert sum(groups) == 20 and len(groups) < 10, groups
    assert len(await RunRecord.filter(outcome="succeeded")) == 20


async def test_a_kind_that_raises_records_a_failed_run(engine, fleet, monkeypatch):  # noqa: F811
    rule = await create(engine, policy={"max_attempts": 1, "misfire_grace_s": 1})
    kind = engine.app.state.services.rules._registry.task_kinds["rmf"]

    def broken(document, occurrence):
        raise KeyError("zone")

    monkeypatch.setattr(kind, "build", broken)
    engine.clock.advance(seconds=60)
    assert await engine.dispatch() == 1
    task_id = first_id(rule)
    [run] = await runs_of(engine, task_id)
    assert run["outcome"] == "failed" and "KeyError('zone')" in run["error"]
    stored = await TaskRecord.get(id=task_id)
    assert (stored.status, stored.lease_owner) == ("failed", None)
    assert fleet.recorder.records == []


async def test_an_outcome_whose_recording_fails_is_recorded_once_the_database_is_back(
    engine,  # noqa: F811
    fleet,  # noqa: F811
    monkeypatch,
    caplog,
):
    rule = await create(engine)
    store: Store = engine.services.store
    settle, failures = store.settle, []

    async def dropped_twice(outcomes, owner):
        if len(failures) < 2:
            failures.append(len(outcomes))
            raise OperationalError("server closed the connection unexpectedly")
        return await settle(outcomes, owner)

    monkeypatch.setattr(store, "settle", dropped_twice)
    engine.clock.advance(seconds=60)
    with caplog.at_level(logging.INFO, logger="task_scheduler.services.settler"):
        assert await engine.dispatch() == 1
    assert failures == [1, 1]
    task_id = first_id(rule)
    [run] = await runs_of(engine, task_id)
    assert run["outcome"] == "succeeded" and run["fleet_task_id"] == fleet.recorder.records[0].task_id
    assert (await TaskRecord.get(id=task_id)).status == "dispatched"
    assert "recorded the 1 outcome(s) kept through a database outage" in caplog.text
