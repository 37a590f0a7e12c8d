"""Listing by kind and target, and the bulk deletes, on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from task_scheduler.events import EventType
from task_scheduler.storage.orm import RuleRecord, RunRecord, TaskRecord
from tests.integration.conftest import T0
from tests.integration.test_api_contract import CLEAN, create, error_locs, rule, tasks

SITE_B = {"name": "site-b", "config": {"kind": "rmf_http", "base_url": "http://127.0.0.1:9"}}


def daily_at(time: str) -> dict[str, Any]:
    return {"kind": "daily", "times": [time], "start": "2026-01-05T00:00:00"}


async def as_kind(rule_id: int, kind: str) -> None:
    """Give a rule and its tasks another kind, as a plug-in kind would store them."""
    await RuleRecord.filter(id=rule_id).update(task_kind=kind)
    await TaskRecord.filter(rule_id=rule_id).update(kind=kind)


async def rule_names(service, **params: Any) -> list[str]:
    response = await service.http.get("/rules", params=params)
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["items"]]


async def test_rules_list_by_kind_and_target(service):
    assert (await service.http.post("/targets", json=SITE_B)).status_code == 201
    await create(service, name="lobby")
    await create(service, name="remote", task={**CLEAN, "target": "site-b"})
    hook = await create(service, name="hook")
    await as_kind(hook["id"], "http")
    assert await rule_names(service, kind="rmf") == ["lobby", "remote"]
    assert await rule_names(service, kind="http") == ["hook"]
    assert await rule_names(service, kind="sql") == []
    assert await rule_names(service, target="site-b") == ["remote"]
    assert await rule_names(service, kind="rmf", target="default") == ["lobby"]
    for bad in ({"kind": ""}, {"kind": "k" * 33}, {"target": "t" * 129}):
        assert (await service.http.get("/rules", params=bad)).status_code == 422, bad


async def test_tasks_list_by_kind_stored_and_computed(service):
    lobby = await create(service, name="lobby")
    hook = await create(service, name="hook", schedule=daily_at("09:00"))
    await as_kind(hook["id"], "http")
    window = {"start": T0, "end": T0 + timedelta(days=5)}
    listed = await tasks(service, kind="http", **window)
    # Jan 6-10: tomorrow's occurrence is stored, the later ones only computed; all carry the rule's kind.
    assert [(i["rule_id"], i["kind"], i["materialized"]) for i in listed["items"]] == [
        (hook["id"], "http", True),
        *[(hook["id"], "http", False)] * 4,
    ]
    assert listed["total"] == 5
    rmf = await tasks(service, kind="rmf", **window)
    assert {i["rule_id"] for i in rmf["items"]} == {lobby["id"]} and rmf["total"] == 5
    assert (await tasks(service, kind="file", **window))["total"] == 0
    assert (await service.http.get("/tasks", params={"kind": "k" * 33})).status_code == 422


async def delete_tasks(service, **params: Any) -> dict[str, int]:
    params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
    response = await service.http.delete("/tasks", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def statuses(**filters: Any) -> dict[str, str]:
    """Every stored task matching the filters, by id, with its status."""
    return dict(await TaskRecord.filter(**filters).values_list("id", "status"))


def tid(rule_id: int, day: int, hour: int = 7) -> str:
    return f"{rule_id}-202601{day:02d}T{hour:02d}0000Z"


async def test_a_bulk_delete_needs_a_filter_and_sane_bounds(service):
    await create(service)
    assert error_locs(await service.http.delete("/tasks")) == [["query"]]
    assert error_locs(await service.http.delete("/tasks", params={"limit": 5})) == [["query"]]
    backwards = {"start": (T0 + timedelta(days=1)).isoformat(), "end": T0.isoformat()}
    assert error_locs(await service.http.delete("/tasks", params=backwards)) == [["query", "end"]]
    too_many = [("id", f"1-202601{d % 28 + 1:02d}T{d % 24:02d}0000Z") for d in range(1001)]
    assert (await service.http.delete("/tasks", params=too_many)).status_code == 422
    assert (await service.http.delete("/tasks", params={"id": "x" * 65})).status_code == 422
    assert (await service.http.delete("/tasks", params={"kind": ""})).status_code == 422
    assert len(await statuses(status="scheduled")) == 1  # nothing was touched


async def test_deleted_pending_occurrences_never_come_back(service):
    rid = (await create(service))["id"]
    other = (await create(service, name="other", schedule=daily_at("09:00")))["id"]
    seen = []
    service.app.state.services.events.stream.subscribe(seen.append)
    # Jan 6 is stored (the horizon is a day), Jan 7 and 8 only computed so far.
    done = await delete_tasks(service, rule_id=rid, end=datetime(2026, 1, 9, tzinfo=timezone.utc))
    assert done == {"deleted": 0, "skipped": 3, "in_flight": 0}
    assert await statuses(rule_id=rid) == {tid(rid, d): "skipped" for d in (6, 7, 8)}
    again = await delete_tasks(service, rule_id=rid, end=datetime(2026, 1, 9, tzinfo=timezone.utc))
    assert again == done  # nothing more to do, and it says so
    [event, _] = seen
    assert event.type is EventType.task_updated and event.rule_id == rid
    assert dict(event.data) == {"action": "bulk delete", **done}

    async def scheduled_days(rule_id: int) -> list[int]:
        listed = await tasks(
            service, rule_id=rule_id, status="scheduled", start=T0, end=T0 + timedelta(days=7)
        )
        return [int(i["scheduled_at"][8:10]) for i in listed["items"]]

    assert await scheduled_days(rid) == [9, 10, 11, 12]
    assert await scheduled_days(other) == [6, 7, 8, 9, 10, 11, 12]
    # A series edit regenerates untouched future occurrences; the expander tops up the horizon.
    assert (await service.http.put(f"/rules/{rid}", json=rule(description="edited"))).status_code == 200
    service.clock.advance(days=2, hours=12)
    await service.expand()
    assert await scheduled_days(rid) == [9, 10, 11, 12]
    skipped = await tasks(service, rule_id=rid, status="skipped", start=T0, end=T0 + timedelta(days=7))
    assert [(i["id"], i["status_reason"]) for i in skipped["items"]] == [
        (tid(rid, d), "deleted") for d in (6, 7, 8)
    ]
    # Once past, a deleted occurrence cannot come back: deleting it again removes the row.
    again = await delete_tasks(service, rule_id=rid, status="skipped")
    assert again == {"deleted": 2, "skipped": 1, "in_flight": 0}
    assert await statuses(rule_id=rid, status="skipped") == {tid(rid, 8): "skipped"}


async def test_history_and_ad_hoc_tasks_are_removed_and_their_runs_kept(service):
    rid = (await create(service, name="hourly", schedule={"kind": "interval", "every": 1, "unit": "hours"}))[
        "id"
    ]
    service.clock.advance(hours=3, minutes=30)  # 13:00, 14:00 and 15:00 are past, 16:00 on ahead
    past = {f"{rid}-20260105T{h}0000Z": status for h, status in ((13, "dispatched"), (14, "failed"))}
    for task_id, status in past.items():
        await TaskRecord.filter(id=task_id).update(status=status)
        await RunRecord.create(**run_of(task_id, rid, "succeeded" if status == "dispatched" else "failed"))
    # A task without a rule, as a timer makes one, and a moved occurrence sent ahead of its time.
    await TaskRecord.create(**ad_hoc("timer-1", kind="http"))
    early = f"{rid}-20260105T200000Z"
    await TaskRecord.filter(id=early).update(status="dispatched", scheduled_at=service.clock.now())
    before = await TaskRecord.all().count()

    done = await delete_tasks(service, end=service.clock.now() + timedelta(minutes=1))
    # Removed: the two finished, the 15:00 one still pending though past, the timer. Kept as
    # skipped: the one sent early, whose occurrence the series would otherwise bring back.
    assert done == {"deleted": 4, "skipped": 1, "in_flight": 0}
    assert await TaskRecord.all().count() == before - done["deleted"]
    assert await statuses(id__in=[*past, "timer-1", f"{rid}-20260105T150000Z"]) == {}
    assert await statuses(id=early) == {early: "skipped"}
    runs = (await service.http.get("/runs")).json()
    assert sorted(r["task_id"] for r in runs["items"]) == sorted(past)  # history of runs stays
    assert (await tasks(service, rule_id=rid, start=T0, end=T0 + timedelta(hours=9)))["total"] == 5


async def test_counts_match_rows_by_kind_and_id(service):
    lobby = (await create(service, name="lobby"))["id"]
    hook = (await create(service, name="hook", schedule=daily_at("09:00")))["id"]
    await as_kind(hook, "http")
    await TaskRecord.create(**ad_hoc("timer-1", kind="http"))
    await TaskRecord.create(**ad_hoc("timer-2", kind="file"))
    by_kind = await delete_tasks(service, kind="http", end=datetime(2026, 1, 8, tzinfo=timezone.utc))
    # The timer goes; hook's Jan 6 (stored) and Jan 7 (computed) stay as skipped; lobby untouched.
    assert by_kind == {"deleted": 1, "skipped": 2, "in_flight": 0}
    assert await statuses(kind="http") == {tid(hook, 6, 9): "skipped", tid(hook, 7, 9): "skipped"}
    assert await statuses(rule_id=lobby) == {tid(lobby, 6): "scheduled"}
    assert await statuses(id="timer-2") == {"timer-2": "scheduled"}

    ids = [
        tid(lobby, 6),
        tid(lobby, 20),
        tid(hook, 20, 9),
        "timer-2",
        "nonsense",
        tid(lobby, 20, 8),
        "999-20260110T070000Z",
    ]
    by_id = await delete_tasks(service, id=ids, kind="rmf")
    # lobby's stored Jan 6 and computed Jan 20; not hook's (kind http), not the file timer, nor
    # ids that name no occurrence.
    assert by_id == {"deleted": 0, "skipped": 2, "in_flight": 0}
    assert await statuses(rule_id=lobby) == {tid(lobby, 6): "skipped", tid(lobby, 20): "skipped"}
    files = await delete_tasks(service, id=ids, kind="file")
    assert files == {"deleted": 1, "skipped": 0, "in_flight": 0}
    assert await TaskRecord.filter(rule_id=None).count() == 0


async def test_tasks_being_dispatched_are_left_alone(service):
    rid = (
        await create(service, name="minutely", schedule={"kind": "interval", "every": 60, "unit": "seconds"})
    )["id"]
    service.clock.advance(minutes=2)
    store = service.app.state.services.store
    now = service.clock.now()
    claimed = await store.claim_due(now, "replica-x", now + timedelta(seconds=30), 1)
    assert [t.id for t in claimed] == [f"{rid}-20260105T120100Z"]
    done = await delete_tasks(service, rule_id=rid, end=now + timedelta(seconds=1))
    # 12:01 is being sent: left; 12:02 is due but unclaimed: removed, being past.
    assert done == {"deleted": 1, "skipped": 0, "in_flight": 1}
    assert await statuses(rule_id=rid, scheduled_at__lte=now) == {claimed[0].id: "dispatching"}
    service.clock.advance(seconds=31)  # the claim's lease ran out: nobody holds it any more
    assert await delete_tasks(service, rule_id=rid, status="dispatching") == {
        "deleted": 1,
        "skipped": 0,
        "in_flight": 0,
    }


async def test_a_lagging_rule_keeps_what_it_would_store_again(service):
    """After downtime a rule's stored occurrences end in the past: one of its edited
    occurrences between there and now must stay as a marker, or the expander stores it again."""
    rid = (await create(service))["id"]
    moved = tid(rid, 8)  # beyond the stored day, so stored only because it was edited
    patched = await service.http.patch(f"/tasks/{moved}", json={"scheduled_at": "2026-01-08T10:00:00Z"})
    assert patched.status_code == 200
    service.clock.advance(days=4)  # down since T0: stored up to Jan 6 12:00, now Jan 9 12:00
    assert await delete_tasks(service, rule_id=rid) == {"deleted": 1, "skipped": 1, "in_flight": 0}
    await service.expand()
    assert (await statuses(rule_id=rid))[moved] == "skipped"
    assert tid(rid, 6) not in await statuses(rule_id=rid)  # past its stored end: gone for good


async def test_a_bulk_delete_is_one_transaction(service, monkeypatch):
    rid = (await create(service, name="hourly", schedule={"kind": "interval", "every": 1, "unit": "hours"}))[
        "id"
    ]
    service.clock.advance(hours=2, minutes=30)
    await TaskRecord.filter(id=f"{rid}-20260105T130000Z").update(status="dispatched")
    before = await statuses()
    store = service.app.state.services.store
    insert = store.insert_tasks

    async def fail_after_insert(records):
        await insert(records)  # the computed occurrences, the last statement, then a failure
        raise ConnectionError("database went away")

    monkeypatch.setattr(store, "insert_tasks", fail_after_insert)
    with pytest.raises(ConnectionError):
        await service.http.delete("/tasks", params={"end": (T0 + timedelta(days=3)).isoformat()})
    # The dispatched and the past pending task were deleted, the future ones skipped, computed
    # ones stored, before the failure: all rolled back.
    assert await statuses() == before
    monkeypatch.undo()
    done = await delete_tasks(service, end=T0 + timedelta(days=3))
    # 13:00 on Jan 5 to 11:00 on Jan 8 is 71 occurrences: 2 past ones removed, the rest skipped.
    assert done == {"deleted": 2, "skipped": 69, "in_flight": 0}
    assert await TaskRecord.all().count() == 69 == len(await statuses(status="skipped"))


def run_of(task_id: str, rule_id: int | None, outcome: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "rule_id": rule_id,
        "attempt": 1,
        "started_at": T0,
        "finished_at": T0,
        "duration_ms": 1.0,
        "outcome": outcome,
        "replica": "replica-x",
    }


def ad_hoc(task_id: str, *, kind: str) -> dict[str, Any]:
    """A task no rule made (a timer's), due in an hour."""
    return {
        "id": task_id,
        "rule_id": None,
        "original_at": T0,
        "scheduled_at": T0 + timedelta(hours=1),
        "kind": kind,
        "due_at": T0 + timedelta(hours=1),
        "created_at": T0,
        "updated_at": T0,
    }


async def test_runs_purge_by_period_rule_and_task(service):
    for i, (task_id, rule_id, outcome) in enumerate(
        [("1-a", 1, "succeeded"), ("1-b", 1, "failed"), ("2-a", 2, "succeeded"), ("2-b", 2, "failed")]
    ):
        await RunRecord.create(**{**run_of(task_id, rule_id, outcome), "started_at": T0 + timedelta(hours=i)})

    async def purge(**params: Any) -> int:
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
        response = await service.http.delete("/runs", params=params)
        assert response.status_code == 200, response.text
        return response.json()["deleted"]

    assert error_locs(await service.http.delete("/runs")) == [["query"]]
    backwards = {"start": (T0 + timedelta(hours=1)).isoformat(), "end": T0.isoformat()}
    assert error_locs(await service.http.delete("/runs", params=backwards)) == [["query", "end"]]
    assert await purge(rule_id=3) == 0
    assert await purge(start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2), rule_id=2) == 0
    assert await purge(start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2)) == 1  # 1-b
    assert await purge(task_id="2-b", status="failed") == 1
    assert await purge(start=T0 + timedelta(hours=2)) == 1  # 2-a
    assert await purge(before=T0 + timedelta(hours=5), end=T0 + timedelta(minutes=1)) == 1  # 1-a
    assert await RunRecord.all().count() == 0


async def test_deleting_all_rules_needs_the_confirmation_and_is_one_transaction(service, monkeypatch):
    lobby = (await create(service, name="lobby"))["id"]
    await create(service, name="patrol", schedule=daily_at("09:00"))
    await TaskRecord.filter(id=tid(lobby, 6)).update(status="dispatched")  # history: stays
    await TaskRecord.create(**ad_hoc("timer-1", kind="http"))  # no rule: not the rules' to delete
    for params in ({}, {"confirm": "yes"}, {"confirm": "DELETE-ALL-RULES"}):
        assert error_locs(await service.http.delete("/rules", params=params)) == [["query", "confirm"]]
    store = service.app.state.services.store
    delete_rules = store.delete_rules

    async def fail_after_deleting(rule_ids, after):
        await delete_rules(rule_ids, after)
        raise ConnectionError("database went away")

    monkeypatch.setattr(store, "delete_rules", fail_after_deleting)
    with pytest.raises(ConnectionError):
        await service.http.delete("/rules", params={"confirm": "delete-all-rules"})
    assert await RuleRecord.all().count() == 2 and await TaskRecord.all().count() == 3
    monkeypatch.undo()

    seen = []
    service.app.state.services.events.stream.subscribe(seen.append)
    response = await service.http.delete("/rules", params={"confirm": "delete-all-rules"})
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2, "tasks_deleted": 1}  # patrol's Jan 6 occurrence
    assert (await service.http.get("/rules")).json()["total"] == 0
    assert await statuses() == {tid(lobby, 6): "dispatched", "timer-1": "scheduled"}
    assert (await tasks(service, start=T0, end=T0 + timedelta(days=30), status="scheduled"))["total"] == 1
    assert [(e.type, dict(e.data)) for e in seen] == [
        (EventType.rule_deleted, {"action": "delete all", "count": 2})
    ]
    again = await service.http.delete("/rules", params={"confirm": "delete-all-rules"})
    assert again.json() == {"deleted": 0, "tasks_deleted": 0}


async def test_stored_ids_are_found_among_more_ids_than_a_statement_takes(service):
    """A deep page past the stored horizon asks which of its many computed ids are stored."""
    await create(service)
    stored = [row.id for row in await TaskRecord.all()]
    assert stored
    asked = [f"0-{i}" for i in range(40_000)] + stored
    assert await service.services.store.stored_task_ids(asked) == set(stored)


async def test_rule_states_are_read_for_more_ids_than_a_statement_takes(service):
    """A deep listing page checks many of the phase index's candidates against their rules."""
    rule = await create(service)
    states = await service.services.store.rule_states([*range(100_000, 140_000), rule["id"]])
    assert list(states) == [rule["id"]] and states[rule["id"]][0] is True
