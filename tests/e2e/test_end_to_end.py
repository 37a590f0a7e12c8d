"""The service and the fake fleet as separate processes, talking over real sockets.

Waits poll the fleet's records or the API against a deadline; nothing sleeps blindly.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from task_scheduler.domain.messages import TASK_LABEL
from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess
from tests.databases import clean_database

pytestmark = pytest.mark.e2e
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}


def submissions(fleet: FakeFleetProcess) -> list[dict[str, Any]]:
    return [r for r in fleet.received() if r["route"].startswith("POST")]


def counts(fleet: FakeFleetProcess) -> dict[str, int]:
    return fleet.counts(TASK_LABEL)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet() -> Iterator[FakeFleetProcess]:
    with FakeFleetProcess() as fleet:
        yield fleet


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path: Path, fleet: FakeFleetProcess) -> Iterator[ServiceProcess]:
    db_url = asyncio.run(clean_database(request.param, tmp_path))
    fleet.clear()
    fleet.behave()
    process = ServiceProcess(
        tmp_path,
        db_url=db_url,
        targets={"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
        lease_s=2.0,
        shutdown_grace_s=0.5,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def soon(seconds: float) -> datetime:
    """At least ``seconds`` from now, on a whole second (rounded up: rounding down could put
    a rule's only occurrence in the past by the time it is created)."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(
        seconds=1
    )


def create_rule(service: ServiceProcess, **body: Any) -> dict[str, Any]:
    response = httpx.post(service.url + "/rules", json={"task": CLEAN, **body}, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def every_second(start: datetime, count: int) -> dict[str, Any]:
    return {"kind": "interval", "every": 1, "unit": "seconds", "start": start.isoformat(), "count": count}


def test_rule_fires_on_time_with_valid_payloads(service, fleet):
    start = soon(2)
    create_rule(service, name="every second", schedule=every_second(start, 4))
    wait_until(lambda: len(submissions(fleet)) >= 4, 15, "four dispatches")
    received = submissions(fleet)
    assert len(received) == 4
    assert all(r["problems"] == [] and r["status"] == 200 for r in received)
    for k, record in enumerate(sorted(received, key=lambda r: r["time"])):
        lateness = record["time"] - (start + timedelta(seconds=k)).timestamp()
        assert -0.01 <= lateness < 0.5, lateness
    assert sorted(counts(fleet).values()) == [1, 1, 1, 1]


def test_kill_9_and_restart_loses_nothing_and_sends_nothing_twice(service, fleet):
    start = soon(2)
    rule = create_rule(
        service,
        name="through a crash",
        schedule=every_second(start, 8),
        policy={"catch_up": "all", "misfire_grace_s": 120},
    )
    wait_until(lambda: len(submissions(fleet)) >= 2, 15, "the first dispatches")
    service.kill()
    service.start()
    expected = {f"{rule['id']}-{(start + timedelta(seconds=k)).strftime('%Y%m%dT%H%M%SZ')}" for k in range(8)}
    wait_until(lambda: set(counts(fleet)) >= expected, 30, "all eight occurrences")
    assert counts(fleet) == dict.fromkeys(expected, 1)
    tasks = httpx.get(
        service.url + "/tasks", params={"rule_id": rule["id"], "start": start.isoformat()}
    ).json()
    assert {t["status"] for t in tasks["items"]} == {"dispatched"}


def test_connection_dropped_after_sending_is_not_sent_twice(service, fleet):
    fleet.behave({"mode": "drop", "count": 1})
    rule = create_rule(service, name="dropped", schedule={"kind": "once", "at": soon(1).isoformat()})
    wait_until(
        lambda: httpx.get(f"{service.url}/rules/{rule['id']}/status").json()["last_outcome"] is not None,
        15,
        "a run",
    )
    assert list(counts(fleet).values()) == [1]
    status = httpx.get(f"{service.url}/rules/{rule['id']}/status").json()
    assert status["last_outcome"] == "succeeded"


def test_run_now_and_disable(service, fleet):
    rule = create_rule(service, name="later", schedule={"kind": "daily", "times": ["03:00"]})
    adhoc = httpx.post(f"{service.url}/rules/{rule['id']}/run")
    assert adhoc.status_code == 202
    wait_until(lambda: len(submissions(fleet)) == 1, 10, "the ad-hoc dispatch")
    assert httpx.post(f"{service.url}/rules/{rule['id']}/disable").status_code == 200
    assert httpx.post(f"{service.url}/rules/{rule['id']}/run").status_code == 409


def test_sigterm_hands_back_claims_and_the_fleet_is_asked_before_resending(service, fleet):
    fleet.behave({"mode": "delay", "seconds": 30, "count": 1})
    rule = create_rule(
        service,
        name="slow fleet",
        schedule={"kind": "once", "at": soon(1).isoformat()},
        policy={"misfire_grace_s": 120},
    )
    wait_until(lambda: len(submissions(fleet)) == 1, 10, "the slow dispatch to start")
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert service.stop() in (0, -15)
    service.start()
    wait_until(
        lambda: httpx.get(f"{service.url}/rules/{rule['id']}/status").json()["last_outcome"] == "succeeded",
        15,
        "the task to be settled after the restart",
    )
    assert list(counts(fleet).values()) == [1]
    dispatching = httpx.get(
        service.url + "/tasks", params={"status": "dispatching", "start": soon(-60).isoformat()}
    )
    assert dispatching.json()["total"] == 0
