"""The dispatcher against a real fake fleet over sockets, on each database, with a fake clock.

Each test drives the engine pass by pass (``dispatch()``), so nothing waits for wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.domain.messages import RULE_LABEL
from task_scheduler.events import EventType
from task_scheduler.storage.orm import TaskRecord
from task_scheduler.testing.fake_fleet import running_fake_fleet
from task_scheduler.testing.service_process import free_port
from tests.integration.conftest import T0, Service

CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}
MINUTELY = {"kind": "interval", "every": 60, "unit": "seconds"}


@pytest.fixture
async def fleet() -> AsyncIterator[Any]:
    async with running_fake_fleet() as handle:
        yield handle


@pytest.fixture
async def engine(db_url, clock, fleet) -> AsyncIterator[Service]:
    settings = build_settings(
        {
            "db_url": db_url,
            "targets": {"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
            "replica_id": "replica-a",
        },
        environ={},
    )
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            yield Service(app=app, clock=clock, http=http)


async def create(engine: Service, **overrides: Any) -> dict[str, Any]:
    body = {"name": "lobby", "schedule": MINUTELY, "task": CLEAN, **overrides}
    response = await engine.http.post("/rules", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def task(engine: Service, task_id: str) -> dict[str, Any]:
    return (await engine.http.get(f"/tasks/{task_id}")).json()


async def runs_of(engine: Service, task_id: str) -> list[dict[str, Any]]:
    return (await engine.http.get(f"/tasks/{task_id}/runs")).json()


def first_id(rule: dict[str, Any], minutes: int = 1) -> str:
    return f"{rule['id']}-{(T0 + timedelta(minutes=minutes)).strftime('%Y%m%dT%H%M%SZ')}"


async def test_due_task_reaches_the_fleet_once_with_a_valid_labelled_request(engine, fleet):
    rule = await create(engine)
    assert await engine.dispatch() == 0  # nothing due yet
    engine.clock.advance(seconds=60)
    assert await engine.dispatch() == 1
    assert await engine.dispatch() == 0
    [received] = fleet.recorder.records
    assert received.problems == [] and received.status == 200
    request = received.body["request"]
    task_id = first_id(rule)
    assert f"task_scheduler.task={task_id}" in request["labels"]
    assert f"task_scheduler.rule={rule['id']}" in request["labels"]
    assert request["requester"] == "task_scheduler"
    assert request["unix_millis_earliest_start_time"] == int((T0 + timedelta(minutes=1)).timestamp() * 1000)
    stored = await task(engine, task_id)
    assert stored["status"] == "dispatched"
    [run] = await runs_of(engine, task_id)
    assert run["outcome"] == "succeeded" and run["fleet_task_id"] == received.task_id
    assert run["replica"] == "replica-a" and run["attempt"] == 1
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["last_outcome"] == "succeeded" and status["consecutive_failures"] == 0


async def test_an_occurrence_keeps_its_milliseconds_from_schedule_to_fleet(engine, fleet):
    at = T0 + timedelta(seconds=30, milliseconds=250)
    rule = await create(engine, schedule={"kind": "once", "at": at.isoformat()})
    task_id = f"{rule['id']}-{at:%Y%m%dT%H%M%S}.250Z"
    listed = (await engine.http.get("/tasks", params={"rule_id": rule["id"]})).json()
    assert [(t["id"], t["scheduled_at"]) for t in listed["items"]] == [
        (task_id, "2026-01-05T12:00:30.250000Z")
    ]
    engine.clock.advance(seconds=30, milliseconds=249)
    assert await engine.dispatch() == 0  # one millisecond early
    engine.clock.advance(milliseconds=1)
    assert await engine.dispatch() == 1
    [received] = fleet.recorder.records
    request = received.body["request"]
    assert f"task_scheduler.task={task_id}" in request["labels"]
    assert request["unix_millis_earliest_start_time"] == int(at.timestamp() * 1000)
    assert (await task(engine, task_id))["status"] == "dispatched"


async def test_a_task_claimed_ahead_of_its_time_is_sent_at_it_not_before(engine, fleet):
    rule = await create(engine, schedule={"kind": "once", "at": (T0 + timedelta(seconds=60)).isoformat()})
    task_id = first_id(rule)
    engine.clock.advance(seconds=59.9)  # within the 0.25 s window
    passing = asyncio.create_task(engine.dispatch(ahead=True))
    await asyncio.wait_for(engine.clock.sleeping(), 10)
    assert fleet.recorder.records == []
    assert (await task(engine, task_id))["status"] == "dispatching"
    edit = await engine.http.patch(f"/tasks/{task_id}", json={"enabled": False})
    assert edit.status_code == 409  # on its way: as any task being dispatched
    engine.clock.advance(seconds=0.099)
    await engine.clock.sleeping()  # looked at the time again, and went back to waiting
    assert fleet.recorder.records == []
    engine.clock.advance(seconds=0.001)
    assert await passing == 1
    [received] = fleet.recorder.records
    assert f"task_scheduler.task={task_id}" in received.body["request"]["labels"]
    [run] = await runs_of(engine, task_id)
    assert run["started_at"] == "2026-01-05T12:01:00Z" and run["outcome"] == "succeeded"


async def test_a_rule_disabled_while_its_task_waits_for_its_time_stops_it(engine, fleet):
    rule = await create(engine)
    task_id = first_id(rule)
    engine.clock.advance(seconds=59.8)
    passing = asyncio.create_task(engine.dispatch(ahead=True))
    await asyncio.wait_for(engine.clock.sleeping(), 10)
    disabled = await engine.http.post(f"/rules/{rule['id']}/disable")
    assert disabled.status_code == 200, disabled.text
    engine.clock.advance(seconds=0.2)
    assert await passing == 1
    assert fleet.recorder.records == []
    stored = await task(engine, task_id)
    assert (stored["status"], stored["status_reason"]) == ("skipped", "rule disabled")


async def test_a_rule_resumed_while_its_task_waits_for_its_time_sends_it(engine, fleet):
    """The rule as it is at the task's time decides, not the copy read with the claim."""
    rule = await create(engine, policy={"max_attempts": 1, "misfire_grace_s": 1})
    fleet.behave({"mode": "reject", "count": 1})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    assert (await engine.http.get(f"/rules/{rule['id']}/status")).json()["paused"] is True
    engine.clock.advance(seconds=59.8)
    passing = asyncio.create_task(engine.dispatch(ahead=True))
    await asyncio.wait_for(engine.clock.sleeping(), 10)
    assert (await engine.http.post(f"/rules/{rule['id']}/reset-attempts")).status_code == 200
    engine.clock.advance(seconds=0.2)
    assert await passing == 1
    second = first_id(rule, 2)
    assert (await task(engine, second))["status"] == "dispatched"
    assert f"task_scheduler.task={second}" in fleet.recorder.records[-1].body["request"]["labels"]


async def test_stopping_gives_back_a_claim_still_waiting_for_its_time_as_it_was(engine, fleet):
    rule = await create(engine)
    task_id = first_id(rule)
    engine.clock.advance(seconds=59.9)
    dispatcher = engine.services.dispatcher
    passing = asyncio.create_task(engine.dispatch(ahead=True))
    await asyncio.wait_for(engine.clock.sleeping(), 10)
    assert (await task(engine, task_id))["status"] == "dispatching"
    passing.cancel()  # as the service stops: the loop first, then what it started
    with contextlib.suppress(asyncio.CancelledError):
        await passing
    await dispatcher.stop(grace_s=0)
    row = await TaskRecord.get(id=task_id)
    assert (row.status, row.attempts, row.lease_owner) == ("scheduled", 0, None)
    assert row.due_at == T0 + timedelta(seconds=60)
    assert fleet.recorder.records == []


async def test_the_loop_stops_when_a_driver_turns_its_cancellation_into_an_error(engine, monkeypatch):
    """asyncmy, cancelled mid-statement, raises its own error from the rollback: the loop
    must still stop (else the service's shutdown waits for it forever)."""
    store = engine.services.store
    blocked = asyncio.Event()

    async def statement(*args: Any, **kwargs: Any) -> None:
        blocked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("Cancelled during execution") from None

    monkeypatch.setattr(store, "next_due_at", statement)
    loop = asyncio.create_task(engine.services.dispatcher.run())
    await blocked.wait()
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    assert loop.cancelled()


async def test_failure_is_retried_with_backoff_and_checked_at_the_fleet_first(engine, fleet):
    rule = await create(engine, policy={"retry_backoff_s": 4, "max_attempts": 3, "misfire_grace_s": 120})
    fleet.behave({"mode": "fail", "count": 1})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    task_id = first_id(rule)
    pending = await task(engine, task_id)
    assert pending["status"] == "scheduled" and "retrying" in pending["status_reason"]
    assert await engine.dispatch() == 0  # not before the backoff
    engine.clock.advance(seconds=4)
    assert await engine.dispatch() == 1
    assert [r["outcome"] for r in await runs_of(engine, task_id)] == ["succeeded", "failed"]
    assert (await task(engine, task_id))["status"] == "dispatched"
    # The fleet was asked by label before the resend, and kept exactly one task.
    assert [r.route for r in fleet.recorder.records] == [
        "POST /tasks/dispatch_task",
        "GET /tasks",
        "GET /tasks",
        "POST /tasks/dispatch_task",
    ]
    assert fleet.recorder.counts("task_scheduler.task") == {task_id: 1}


async def retry_until_settled(engine: Service, task_id: str, fleet_url: str, back_after: int | None) -> int:
    """Move the clock to each planned retry and dispatch it, pointing the target at the fleet
    after ``back_after`` attempts; return the attempts made."""
    attempts = 0
    while (await TaskRecord.get(id=task_id)).status == "scheduled":
        due_at = (await TaskRecord.get(id=task_id)).due_at
        engine.clock.set(max(engine.clock.now(), due_at))
        if attempts == back_after:
            response = await engine.http.put("/targets/far", json={"kind": "rmf_http", "base_url": fleet_url})
            assert response.status_code == 200, response.text
        assert await engine.dispatch() == 1
        attempts += 1
        assert attempts < 50, "no busy loop"
    return attempts


@pytest.mark.parametrize("back", [False, True], ids=["down-past-the-grace", "back-within-the-grace"])
async def test_an_unreachable_fleet_is_retried_until_the_grace_runs_out_then_missed(engine, fleet, back):
    far = {"name": "far", "config": {"kind": "rmf_http", "base_url": f"http://127.0.0.1:{free_port()}"}}
    assert (await engine.http.post("/targets", json=far)).status_code == 201
    policy = {"max_attempts": 1, "retry_backoff_s": 5, "retry_backoff_max_s": 20, "misfire_grace_s": 120}
    once = {"kind": "once", "at": (T0 + timedelta(seconds=60)).isoformat()}
    rule = await create(engine, schedule=once, task={**CLEAN, "target": "far"}, policy=policy)
    engine.clock.advance(seconds=60)
    task_id = first_id(rule)

    attempts = await retry_until_settled(engine, task_id, fleet.url, back_after=3 if back else None)

    settled = await task(engine, task_id)
    runs = await runs_of(engine, task_id)
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["consecutive_failures"] == 0 and status["paused_reason"] is None
    if back:
        assert settled["status"] == "dispatched" and attempts == 4
        assert fleet.recorder.counts("task_scheduler.task") == {task_id: 1}
        return
    assert settled["status"] == "missed" and "unreachable past the misfire grace" in settled["status_reason"]
    # An outage is not the task's fault: tried past max_attempts. Claims that found the
    # target known to be down gave the task back unsent, with no run.
    assert attempts >= len(runs) > policy["max_attempts"]
    assert all(re.search("cannot (reach|ask) the fleet", run["error"]) for run in runs)
    # The last try is a second before the deadline, or a moment earlier when a probe then
    # found the fleet down within the second before it (the news is fresh: no try needed).
    last_try = datetime.fromisoformat(runs[0]["started_at"])
    assert T0 + timedelta(seconds=60 + 120 - 2) <= last_try <= T0 + timedelta(seconds=60 + 120 - 1)


async def test_rejection_is_not_retried(engine, fleet):
    rule = await create(engine)
    fleet.behave({"mode": "reject"})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    task_id = first_id(rule)
    got = await task(engine, task_id)
    assert got["status"] == "failed" and "rejected" in got["status_reason"]
    engine.clock.advance(seconds=30)
    await engine.dispatch()
    assert [r["outcome"] for r in await runs_of(engine, task_id)] == ["rejected"]


@pytest.mark.parametrize("mode", ["drop", "fail-accepted"])
async def test_ambiguous_outcome_is_settled_by_asking_the_fleet(engine, fleet, mode):
    rule = await create(engine)
    fleet.behave(
        {"mode": "drop", "count": 1} if mode == "drop" else {"mode": "fail", "accepted": True, "count": 1}
    )
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    task_id = first_id(rule)
    got = await task(engine, task_id)
    assert got["status"] == "dispatched"
    [run] = await runs_of(engine, task_id)
    assert run["outcome"] == "succeeded" and run["response"] == {
        "found_by_label": f"task_scheduler.task={task_id}"
    }
    assert fleet.recorder.counts("task_scheduler.task") == {task_id: 1}


@pytest.mark.parametrize(
    ("catch_up", "ran", "skipped"),
    [("all", 5, 0), ("latest", 1, 4), ("none", 0, 5)],
)
async def test_misfire_after_downtime(engine, fleet, catch_up, ran, skipped):
    await create(engine, policy={"misfire_grace_s": 300, "catch_up": catch_up})
    # Down for ten minutes: occurrences at 12:01..12:10; the last five are within the grace.
    engine.clock.advance(minutes=10, seconds=30)
    engine.services.dispatcher.started_at = engine.clock.now()
    await engine.dispatch()
    listed = (
        await engine.http.get(
            "/tasks", params={"start": T0.isoformat(), "end": (T0 + timedelta(minutes=11)).isoformat()}
        )
    ).json()
    statuses = [i["status"] for i in listed["items"]]
    assert statuses.count("missed") == 5
    assert statuses.count("dispatched") == ran and statuses.count("skipped") == skipped
    assert len(fleet.recorder.records) == ran
    missed = next(i for i in listed["items"] if i["status"] == "missed")
    assert "misfire grace" in missed["status_reason"]
    if catch_up == "latest":
        dispatched = next(i for i in listed["items"] if i["status"] == "dispatched")
        assert dispatched["scheduled_at"] == "2026-01-05T12:10:00Z"


async def test_disabled_occurrence_is_skipped_with_the_reason(engine, fleet):
    rule = await create(engine)
    task_id = first_id(rule)
    await engine.http.patch(f"/tasks/{task_id}", json={"enabled": False})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    got = await task(engine, task_id)
    assert (got["status"], got["status_reason"]) == ("skipped", "task disabled")
    assert fleet.recorder.records == []


async def test_run_now_and_dispatch_now(engine, fleet):
    rule = await create(engine)
    adhoc = await engine.http.post(f"/rules/{rule['id']}/run")
    assert adhoc.status_code == 202
    later = first_id(rule, minutes=30)
    assert (await engine.http.post(f"/tasks/{later}/dispatch")).status_code == 202
    assert await engine.dispatch() == 2
    assert (await task(engine, adhoc.json()["id"]))["status"] == "dispatched"
    assert (await task(engine, later))["status"] == "dispatched"
    assert (await engine.http.post(f"/tasks/{later}/dispatch")).status_code == 409
    assert len(fleet.recorder.accepted()) == 2


async def test_overlap_skip(engine, fleet):
    rule = await create(engine, policy={"overlap": "skip", "misfire_grace_s": 600})
    busy = first_id(rule, 1)
    await TaskRecord.filter(id=busy).update(
        status="dispatching", lease_owner="replica-b", lease_until=T0 + timedelta(minutes=30), attempts=1
    )
    engine.clock.advance(seconds=120)
    await engine.dispatch()
    got = await task(engine, first_id(rule, 2))
    assert got["status"] == "skipped" and "overlap=skip" in got["status_reason"]
    assert fleet.recorder.records == []


async def test_rule_pauses_after_consecutive_failures_and_resumes(engine, fleet):
    rule = await create(engine, policy={"max_attempts": 2, "misfire_grace_s": 1})
    fleet.behave({"mode": "reject"})
    for _ in range(2):
        engine.clock.advance(seconds=60)
        await engine.dispatch()
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["paused"] is True and status["consecutive_failures"] == 2
    fleet.behave({"mode": "accept"})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    third = await task(engine, first_id(rule, 3))
    assert third["status"] == "skipped" and third["status_reason"].startswith("rule paused")
    resumed = await engine.http.post(f"/rules/{rule['id']}/reset-attempts")
    assert resumed.status_code == 200
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    assert (await task(engine, first_id(rule, 4)))["status"] == "dispatched"
    assert (await engine.http.get(f"/rules/{rule['id']}/status")).json()["paused"] is False


async def test_lead_time_sends_early_with_the_occurrence_as_earliest_start(engine, fleet):
    rule = await create(engine, policy={"lead_time_s": 20})
    engine.clock.advance(seconds=40)
    assert await engine.dispatch() == 1
    [received] = fleet.recorder.records
    occurrence = T0 + timedelta(minutes=1)
    assert received.body["request"]["unix_millis_earliest_start_time"] == int(occurrence.timestamp() * 1000)
    assert (await task(engine, first_id(rule)))["status"] == "dispatched"


async def test_robot_task_goes_to_the_robot_route(engine, fleet):
    await create(engine, task={**CLEAN, "robot": "tinyRobot1", "fleet": "tinyRobot"})
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    [received] = fleet.recorder.records
    assert received.route == "POST /tasks/robot_task" and received.problems == []
    assert received.body["robot"] == "tinyRobot1"


async def test_events_carry_the_rule_channel(engine, fleet):
    seen = []
    engine.services.events.stream.subscribe(lambda event: seen.append(event))
    await create(engine, channel="ops")
    await create(engine, name="other")
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    kinds = [event.type for event in seen if event.channel == "ops"]
    assert EventType.rule_created in kinds and EventType.task_dispatched in kinds
    assert kinds.count(EventType.task_dispatched) == 1  # only the "ops" rule's


async def test_runs_listing_and_purge(engine, fleet):
    rule = await create(engine)
    for _ in range(3):
        engine.clock.advance(seconds=60)
        await engine.dispatch()
    page = (await engine.http.get("/runs", params={"rule_id": rule["id"], "limit": 2})).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["started_at"] > page["items"][1]["started_at"]
    assert (await engine.http.get("/runs", params={"status": "failed"})).json()["total"] == 0
    cut = (T0 + timedelta(minutes=2, seconds=30)).isoformat()
    assert (await engine.http.delete("/runs", params={"before": cut})).json() == {"deleted": 2}
    assert (await engine.http.get("/runs")).json()["total"] == 1


async def test_targets_api(engine, fleet):
    listed = (await engine.http.get("/targets")).json()
    assert [(t["name"], t["source"]) for t in listed] == [("default", "config")]
    body = {"name": "site-b", "config": {"kind": "rmf_http", "base_url": fleet.url, "token": "s3cret"}}
    created = await engine.http.post("/targets", json=body)
    assert created.status_code == 201, created.text
    assert "s3cret" not in created.text and created.json()["config"]["secrets_set"] == ["token"]
    assert (await engine.http.post("/targets", json=body)).status_code == 409
    unknown = await engine.http.post(
        "/rules", json={"name": "x", "schedule": MINUTELY, "task": {**CLEAN, "target": "nope"}}
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "task", "target"]
    await create(engine, task={**CLEAN, "target": "site-b"})
    assert (await engine.http.delete("/targets/site-b")).status_code == 409
    assert (await engine.http.delete("/targets/default")).status_code == 409
    assert (await engine.http.get("/targets/nope")).status_code == 404
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    assert fleet.recorder.records[0].status == 200


async def test_secrets_never_come_back_even_in_errors(engine, fleet):
    body = {
        "name": "leaky",
        "config": {
            "kind": "rmf_http",
            "base_url": fleet.url,
            "token": "t0ps3cret",
            "jwt_secret": "also-s3cret",
        },
    }
    response = await engine.http.post("/targets", json=body)
    assert response.status_code == 422
    assert "s3cret" not in response.text


async def claim_as_dead_replica(engine: Service, lease_s: float = 1.0) -> list[TaskRecord]:
    now = engine.clock.now()
    return await engine.services.store.claim_due(now, "replica-dead", now + timedelta(seconds=lease_s), 10)


async def test_replica_died_after_sending_past_the_grace_is_found_not_missed(engine, fleet):
    rule = await create(engine)
    engine.clock.advance(seconds=60)
    [claimed] = await claim_as_dead_replica(engine)
    rule_record = await engine.services.store.get_rule(rule["id"])
    from task_scheduler.domain.messages import build_message

    message = build_message(
        task_id=claimed.id,
        rule_id=rule["id"],
        template=rule_record.task["request"],
        robot=None,
        fleet=None,
        scheduled_at=claimed.scheduled_at,
        requester="task_scheduler",
        now=engine.clock.now(),
    )
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{fleet.url}/tasks/dispatch_task", json=message)).status_code == 200
    engine.clock.advance(seconds=300)  # lease and misfire grace long gone
    await engine.dispatch()
    got = await task(engine, claimed.id)
    assert got["status"] == "dispatched"
    assert fleet.recorder.counts("task_scheduler.task")[claimed.id] == 1


async def test_websocket_target_never_resends_an_attempt_that_left_no_trace(engine, fleet):
    await engine.http.post(
        "/targets", json={"name": "bridge", "config": {"kind": "rmf_ws", "url": fleet.ws_url, "timeout_s": 2}}
    )
    await create(engine, task={**CLEAN, "target": "bridge"})
    engine.clock.advance(seconds=60)
    [claimed] = await claim_as_dead_replica(engine)
    engine.clock.advance(seconds=2)
    await engine.dispatch()
    got = await task(engine, claimed.id)
    assert got["status"] == "failed" and "cannot be asked" in got["status_reason"]
    assert fleet.recorder.records == []


async def test_own_dispatches_in_flight_are_never_claimed_again(engine, fleet):
    await create(engine)
    engine.clock.advance(seconds=60)
    now = engine.clock.now()
    store = engine.services.store
    [mine] = await store.claim_due(now, "replica-a", now + timedelta(seconds=1), 10)
    later = now + timedelta(seconds=5)
    assert await store.claim_due(later, "replica-a", later + timedelta(seconds=1), 10, busy=[mine.id]) == []
    assert await store.renew_leases([mine.id], "replica-a", later + timedelta(seconds=60)) == 1
    assert await store.claim_due(later, "replica-b", later + timedelta(seconds=1), 10) == []


async def test_failures_in_one_pass_all_count_towards_the_pause(engine, fleet):
    rule = await create(engine, policy={"catch_up": "all", "misfire_grace_s": 600, "max_attempts": 3})
    fleet.behave({"mode": "reject"})
    engine.clock.advance(minutes=3)
    engine.services.dispatcher.started_at = engine.clock.now()
    await engine.dispatch()
    status = (await engine.http.get(f"/rules/{rule['id']}/status")).json()
    assert status["consecutive_failures"] == 3 and status["paused"] is True


async def test_series_edit_keeps_a_task_waiting_for_its_retry(engine, fleet):
    rule = await create(engine, policy={"lead_time_s": 30, "retry_backoff_s": 5, "misfire_grace_s": 120})
    fleet.behave({"mode": "fail", "count": 1})
    engine.clock.advance(seconds=30)  # sent early, 30 s before the occurrence
    await engine.dispatch()
    task_id = first_id(rule)
    assert (await task(engine, task_id))["status"] == "scheduled"
    body = {
        "name": "lobby",
        "description": "edited",
        "schedule": rule["schedule"],
        "task": CLEAN,
        "policy": rule["policy"],
    }
    assert (await engine.http.put(f"/rules/{rule['id']}", json=body)).status_code == 200
    assert (await task(engine, task_id))["materialized"] is True
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    assert (await task(engine, task_id))["status"] == "dispatched"
    assert fleet.recorder.counts("task_scheduler.task") == {task_id: 1}


async def test_time_filters_honour_offsets(engine, fleet):
    await create(engine)
    for _ in range(3):
        engine.clock.advance(seconds=60)
        await engine.dispatch()
    # 12:00-12:02 UTC written as +02:00 and -05:00
    for start, end in [
        ("2026-01-05T14:00:30+02:00", "2026-01-05T14:02:30+02:00"),
        ("2026-01-05T07:00:30-05:00", "2026-01-05T07:02:30-05:00"),
    ]:
        listed = (await engine.http.get("/tasks", params={"start": start, "end": end})).json()
        assert [i["scheduled_at"] for i in listed["items"]] == [
            "2026-01-05T12:01:00Z",
            "2026-01-05T12:02:00Z",
        ]
        runs = (await engine.http.get("/runs", params={"start": start, "end": end})).json()
        assert runs["total"] == 2
    purged = await engine.http.delete("/runs", params={"before": "2026-01-05T14:02:30+02:00"})
    assert purged.json() == {"deleted": 2}


async def test_expander_catches_up_after_downtime_in_one_pass(engine, fleet):
    rule = await create(engine)
    engine.clock.advance(days=2)
    await engine.expand()
    upcoming = first_id(rule, minutes=2 * 24 * 60 + 1)
    assert (await task(engine, upcoming))["materialized"] is True


async def test_moves_into_the_past_or_out_of_range_are_422_and_unknown_runs_404(engine, fleet):
    rule = await create(engine)
    task_id = first_id(rule, 5)
    past = await engine.http.patch(f"/tasks/{task_id}", json={"scheduled_at": "2026-01-05T11:00:00Z"})
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["body", "scheduled_at"]
    tokyo = await create(engine, name="tokyo", timezone="Asia/Tokyo")
    far = await engine.http.patch(
        f"/tasks/{first_id(tokyo, 5)}", json={"scheduled_at": "0001-01-01T00:00:00"}
    )
    assert far.status_code == 422
    assert (await engine.http.get("/tasks", params={"start": "9999-12-31T00:00:00Z"})).status_code == 422
    assert (await engine.http.get("/tasks/nonsense/runs")).status_code == 404
    await engine.http.post(f"/rules/{rule['id']}/disable")
    assert (await engine.http.post(f"/tasks/{first_id(rule, 90)}/dispatch")).status_code == 409


async def test_metrics_and_readiness_name_what_happened(engine, fleet):
    await create(engine)
    engine.clock.advance(seconds=60)
    await engine.dispatch()
    engine.clock.advance(seconds=61)  # one more due, not yet dispatched
    text = (await engine.http.get("/metrics")).text
    assert 'task_scheduler_runs_total{outcome="succeeded"} 1.0' in text
    assert "task_scheduler_queue_depth 1.0" in text
    assert 'task_scheduler_target_queue_depth{target="default"} 1.0' in text
    assert 'task_scheduler_target_runs_total{outcome="succeeded",target="default"} 1.0' in text
    assert "task_scheduler_claims_total 1.0" in text
    assert "task_scheduler_dispatch_lateness_seconds_count 1.0" in text
    assert (await engine.http.get("/readyz")).json()["replica"] == "replica-a"


async def test_a_claim_passes_over_the_tasks_of_saturated_targets(engine, fleet):
    slow = {"name": "slow", "config": {"kind": "rmf_http", "base_url": fleet.url}}
    assert (await engine.http.post("/targets", json=slow)).status_code == 201
    to_slow = await create(engine, name="to slow", task={**CLEAN, "target": "slow"})
    to_default = await create(engine, name="to default")
    engine.clock.advance(seconds=60)
    store, now = engine.services.store, engine.clock.now()
    lease = now + timedelta(seconds=60)

    first = await store.claim_due(now, "replica-a", lease, 10, saturated=["slow"])
    assert [t.id for t in first] == [first_id(to_default)]
    second = await store.claim_due(now, "replica-a", lease, 10, saturated=["slow"])
    assert second == []
    third = await store.claim_due(now, "replica-a", lease, 10)
    assert [(t.id, t.target) for t in third] == [(first_id(to_slow), "slow")]


async def test_changing_a_rules_target_moves_its_pending_tasks(engine, fleet):
    other = {"name": "other", "config": {"kind": "rmf_http", "base_url": fleet.url}}
    assert (await engine.http.post("/targets", json=other)).status_code == 201
    rule = await create(engine)
    moved = {"scheduled_at": (T0 + timedelta(seconds=90)).isoformat()}
    assert (await engine.http.patch(f"/tasks/{first_id(rule)}", json=moved)).status_code == 200
    body = {"name": rule["name"], "schedule": MINUTELY, "task": {**CLEAN, "target": "other"}}
    assert (await engine.http.put(f"/rules/{rule['id']}", json=body)).status_code == 200
    targets = dict(await TaskRecord.filter(rule_id=rule["id"]).values_list("id", "target"))
    assert set(targets.values()) == {"other"}
    edited = await TaskRecord.get(id=first_id(rule))  # kept as edited, and moved to the new target
    assert edited.scheduled_at == T0 + timedelta(seconds=90)


async def test_clock_jumps_forward_and_back_cause_no_storm_and_no_duplicate(engine, fleet):
    await create(engine)  # every minute from T0; grace 60 s
    engine.clock.advance(seconds=60)
    assert await engine.dispatch() == 1

    # An hour forward at once: 60 occurrences are due, but only those within the grace go.
    engine.clock.advance(hours=1)
    passes = 0
    while await engine.dispatch():  # a claim takes a target's tasks a lot at a time
        passes += 1
        assert passes <= 3, "no storm of passes"
    assert len(fleet.recorder.records) == 3  # T0+1 min, then T0+60 and T0+61 min
    statuses = await TaskRecord.filter(scheduled_at__lte=engine.clock.now()).values_list("status", flat=True)
    assert statuses.count("missed") == 58 and statuses.count("dispatched") == 3

    # Back an hour: nothing is due again, nothing is sent again.
    engine.clock.advance(hours=-1)
    assert await engine.dispatch() == 0
    engine.clock.advance(hours=1, minutes=1)  # forward to T0+62 min: that one goes, once
    assert await engine.dispatch() == 1
    counts = fleet.recorder.counts("task_scheduler.task")
    assert len(counts) == 4 and set(counts.values()) == {1}


async def test_a_task_without_a_target_counts_as_the_default_targets_when_saturated(engine, fleet):
    rule = await create(engine)
    engine.clock.advance(seconds=60)
    await TaskRecord.filter(id=first_id(rule)).update(target=None)  # stored before targets were copied
    store, now = engine.services.store, engine.clock.now()

    assert (
        await store.claim_due(now, "replica-a", now + timedelta(seconds=60), 10, saturated=["default"]) == []
    )
    assert await store.next_due_at(saturated=["default"]) is None  # every task of the rule goes there
    claimed = await store.claim_due(now, "replica-a", now + timedelta(seconds=60), 10, saturated=["other"])
    assert [t.id for t in claimed] == [first_id(rule)]


async def test_a_claim_that_fails_before_sending_is_given_back_untouched(engine, fleet, monkeypatch):
    rule = await create(engine)
    engine.clock.advance(seconds=60)

    async def broken(name):
        raise RuntimeError("the target could not be looked up")

    monkeypatch.setattr(engine.services.dispatcher._carriers, "get", broken)
    with pytest.raises(RuntimeError):
        await engine.dispatch()
    stored = await TaskRecord.get(id=first_id(rule))
    assert (stored.status, stored.attempts, stored.lease_owner) == ("scheduled", 0, None)
    monkeypatch.undo()
    assert await engine.dispatch() == 1 and (await task(engine, first_id(rule)))["status"] == "dispatched"


async def test_a_saturated_target_is_looked_past_once_and_news_looks_again(db_url, clock, fleet):
    """While the loop's one target is saturated, it looks past it once (each look reads every
    task due there), not each time the target finishes a lot; a task made due for another
    target meanwhile is news, claimed at once."""
    targets = {
        "default": {"kind": "rmf_http", "base_url": fleet.url, "max_connections": 1},
        "other": {"kind": "rmf_http", "base_url": fleet.url},
    }
    settings = build_settings({"db_url": db_url, "targets": targets, "replica_id": "replica-a"}, environ={})
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            engine = Service(app=app, clock=clock, http=http)
            at_60 = {"kind": "once", "at": (T0 + timedelta(seconds=60)).isoformat()}
            later = {"kind": "once", "at": (T0 + timedelta(hours=1)).isoformat()}
            for number in range(40):
                await create(engine, name=f"now {number}", schedule=at_60)
            slow = [await create(engine, name=f"slow {number}", schedule=later) for number in range(8)]
            elsewhere = await create(
                engine, name="elsewhere", schedule=later, task={**CLEAN, "target": "other"}
            )
            past = looks_past_saturated(engine.services.store)
            engine.clock.advance(seconds=60)
            loop = asyncio.create_task(engine.services.dispatcher.run())
            try:
                await fleet.recorder.wait_for(lambda r: len(r.records) == 40, timeout=30)
                # Ten lots of four, each saturating the target: one look past it in all (a
                # claim, or the next due time, or both).
                assert set(map(tuple, past)) == {("default",)} and len(past) <= 2, past

                fleet.behave({"mode": "delay", "seconds": 0.2, "count": 8})
                for rule in slow:
                    assert (await http.post(f"/rules/{rule['id']}/run")).status_code == 202
                await fleet.recorder.wait_for(lambda r: len(r.records) > 40, timeout=10)
                assert (await http.post(f"/rules/{elsewhere['id']}/run")).status_code == 202
                label = f"{RULE_LABEL}={elsewhere['id']}"
                await fleet.recorder.wait_for(
                    lambda r: any(label in x.body["request"]["labels"] for x in r.records), timeout=10
                )
                # It went while the default target still had most of its slow lot to answer.
                assert len(fleet.recorder.records) < 40 + 8
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop


def looks_past_saturated(store: Any) -> list[list[str]]:
    """Records the saturated targets of each claim or next-due read that passes over some."""
    past: list[list[str]] = []
    for name in ("claim_due", "next_due_at"):
        real = getattr(store, name)

        async def reading(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if kwargs.get("saturated"):
                past.append(list(kwargs["saturated"]))
            return await _real(*args, **kwargs)

        setattr(store, name, reading)
    return past
