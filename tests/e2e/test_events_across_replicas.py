"""Two replicas on one PostgreSQL: a websocket client of one sees what the other dispatched."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess
from tests.databases import clean_database
from tests.e2e.test_end_to_end import CLEAN, soon

pytestmark = pytest.mark.e2e


def test_a_client_of_one_replica_sees_the_events_of_the_replica_that_dispatched(tmp_path: Path):
    db_url = asyncio.run(clean_database("postgres", tmp_path))
    with FakeFleetProcess() as fleet:
        target = {"default": {"kind": "rmf_http", "base_url": fleet.url}}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        dispatching = ServiceProcess(tmp_path / "a", db_url=db_url, targets=target, replica_id="replica-a")
        api_only = ServiceProcess(
            tmp_path / "b", db_url=db_url, targets=target, replica_id="replica-b", run_dispatcher=False
        )
        dispatching.start()
        api_only.start()
        try:
            with connect(api_only.url.replace("http", "ws") + "/events", open_timeout=5) as events:
                # The feeds connect at start; a first rule heard across says they listen.
                probe = {
                    "name": "probe",
                    "schedule": {"kind": "once", "at": soon(3600).isoformat()},
                    "task": CLEAN,
                }
                deadline = time.monotonic() + 10
                while True:
                    assert httpx.post(dispatching.url + "/rules", json=probe, timeout=5).status_code == 201
                    try:
                        heard = json.loads(events.recv(timeout=1))
                        if heard["type"] == "rule.created":
                            break
                    except TimeoutError:
                        assert time.monotonic() < deadline, "no event crossed between the replicas"
                    httpx.delete(dispatching.url + "/rules?confirm=delete-all-rules", timeout=5)
                start = soon(1)
                rule = {"name": "lobby", "schedule": {"kind": "once", "at": start.isoformat()}, "task": CLEAN}
                assert httpx.post(dispatching.url + "/rules", json=rule, timeout=5).status_code == 201
                seen = []
                deadline = time.monotonic() + 15
                while not any(e["type"] == "task.dispatched" for e in seen) and time.monotonic() < deadline:
                    seen.append(json.loads(events.recv(timeout=max(deadline - time.monotonic(), 0.01))))
        finally:
            dispatching.stop()
            api_only.stop()
    by_type = {e["type"]: e for e in seen}
    assert {"rule.created", "task.dispatched", "run.finished"} <= set(by_type), [e["type"] for e in seen]
    assert {e["replica"] for e in seen} == {"replica-a"}
    assert by_type["run.finished"]["data"]["outcome"] == "succeeded"
