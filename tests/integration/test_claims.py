"""The claim protocol, as a property: replicas claiming at once never hold the same task.

Several replicas (owners) claim concurrently, with their own limits and claiming ahead of
time by the same window, from a mix of due tasks, tasks not yet due, and tasks whose lease
(another replica's) has run out. On
PostgreSQL and MariaDB the claims run side by side on separate connections.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.storage import claim_sql
from task_scheduler.storage.claimed import TASK_COLUMNS
from task_scheduler.storage.orm import TaskRecord
from tests.integration.conftest import T0

LEASE = timedelta(seconds=60)


def task(index: int, *, due_in_s: int, leased_until_s: int | None) -> TaskRecord:
    status = TaskStatus.scheduled if leased_until_s is None else TaskStatus.dispatching
    return TaskRecord(
        id=f"t{index}",
        rule_id=None,
        original_at=T0 + timedelta(seconds=index),
        scheduled_at=T0 + timedelta(seconds=due_in_s),
        status=status.value,
        due_at=T0 + timedelta(seconds=due_in_s),
        target="default",
        attempts=0 if leased_until_s is None else 1,
        lease_owner=None if leased_until_s is None else "dead-replica",
        lease_until=None if leased_until_s is None else T0 + timedelta(seconds=leased_until_s),
        created_at=T0,
        updated_at=T0,
    )


tasks_strategy = st.lists(
    st.tuples(st.integers(-30, 30), st.one_of(st.none(), st.integers(-30, 30))), min_size=1, max_size=30
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tasks=tasks_strategy,
    limits=st.lists(st.integers(1, 12), min_size=2, max_size=5),
    ahead_s=st.sampled_from([0, 0, 1, 5]),
)
async def test_concurrent_claims_are_disjoint_and_take_exactly_the_claimable(
    service, db_url, tasks, limits, ahead_s
) -> None:
    store = service.app.state.services.store
    await TaskRecord.all().delete()
    await store.insert_tasks(
        [task(i, due_in_s=due, leased_until_s=lease) for i, (due, lease) in enumerate(tasks)]
    )
    claimable = {
        f"t{i}" for i, (due, lease) in enumerate(tasks) if (due <= ahead_s if lease is None else lease < 0)
    }
    due_by = T0 + timedelta(seconds=ahead_s)

    claims = await asyncio.gather(
        *(
            store.claim_due(T0, f"replica-{n}", T0 + LEASE, limit, due_by=due_by)
            for n, limit in enumerate(limits)
        )
    )

    held = [task.id for claim in claims for task in claim]
    assert len(held) == len(set(held)), "a task was claimed twice"
    assert set(held) <= claimable
    if len(held) < sum(limits) and db_url.startswith(("postgres", "sqlite")):
        # Some replica had room left, so nothing claimable was left behind. InnoDB may lock
        # rows a claim scanned but did not take, so on MariaDB a concurrent claim can pass
        # over them; the next claim takes them (below).
        assert set(held) == claimable
    sweep = await store.claim_due(T0, "replica-sweep", T0 + LEASE, len(tasks), due_by=due_by)
    assert not {t.id for t in sweep} & set(held)
    assert {t.id for t in sweep} | set(held) == claimable
    stored = {t.id: t for t in await TaskRecord.filter(id__in=held)}
    for n, claim in enumerate(claims):
        for claimed in claim:
            row = stored[claimed.id]
            assert (row.lease_owner, row.status) == (f"replica-{n}", TaskStatus.dispatching.value)
            assert row.attempts == claimed.attempts
    lease_of = dict(enumerate(tasks))
    for task_id in held:
        was_leased = lease_of[int(task_id[1:])][1] is not None
        assert stored[task_id].attempts == (2 if was_leased else 1)


async def test_the_next_look_is_ahead_of_a_due_time_but_not_of_a_lease_end(service) -> None:
    """The dispatcher sleeps until the next claimable instant: a scheduled task is claimable
    its claim-ahead window before it is due, a lease only once it has run out (waking
    earlier for it would find nothing to claim, again and again)."""
    store = service.app.state.services.store
    ahead = timedelta(seconds=1)
    await TaskRecord.all().delete()
    await store.insert_tasks([task(0, due_in_s=10, leased_until_s=None)])
    assert await store.next_due_at(claim_ahead=ahead) == T0 + timedelta(seconds=9)
    await store.insert_tasks([task(1, due_in_s=-5, leased_until_s=9)])
    assert await store.next_due_at(claim_ahead=ahead) == T0 + timedelta(seconds=9)
    await store.insert_tasks([task(2, due_in_s=-5, leased_until_s=8)])
    assert await store.next_due_at(claim_ahead=ahead) == T0 + timedelta(seconds=8)
    assert await store.next_due_at() == T0 + timedelta(seconds=8)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_claim_reads_only_what_it_takes_however_many_tasks_are_due(service) -> None:
    """PostgreSQL's claim finds its tasks through indexes and updates them by primary key:
    with thousands due at once (a burst, or a backlog after an outage) no plan step reads
    the whole table."""
    store = service.app.state.services.store
    await TaskRecord.all().delete()
    await store.insert_tasks([task(i, due_in_s=-5, leased_until_s=None) for i in range(3000)])
    db = TaskRecord._meta.db
    await db.execute_script("ANALYZE tasks")
    sql, values = claim_sql.claim(
        "postgres",
        now=T0,
        due_by=T0,
        owner="replica-a",
        lease_until=T0 + LEASE,
        limit=24,
        busy=["t1", "t2"],
        saturated=[],
        db_time=lambda instant: instant,
        columns=TASK_COLUMNS,
    )
    _, plan = await db.execute_query("EXPLAIN " + sql, values)
    steps = "\n".join(row["QUERY PLAN"] for row in plan)
    assert "Seq Scan" not in steps, steps
