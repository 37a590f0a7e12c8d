"""The dispatcher keeps time whatever the API does, and a killed replica's tasks are taken
over within the lease: real service processes, the fake fleet process, real sockets.

Lateness is read from the fleet's own records (when each request arrived).
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess
from tests.databases import clean_database
from tests.e2e.test_end_to_end import counts, create_rule, every_second, soon, submissions, wait_until

pytestmark = pytest.mark.e2e

BUSY_KIND = """
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict

from task_scheduler.kinds.base import TaskKind


class BusyTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["busy"]
    target: str


class BusyKind(TaskKind):
    name = "busy"
    spec = BusyTask
    target_kinds = frozenset({"rmf_http"})

    def check(self, task):
        began = time.perf_counter()
        while time.perf_counter() - began < 1.0:  # a second of CPU, holding the API's loop
            pass
        return [(("target",), "busy doing nothing")]
"""


BUSY_RULE = {
    "name": "busy",
    "schedule": {"kind": "daily", "times": ["03:00"]},
    "task": {"kind": "busy", "target": "default"},
}


@pytest.fixture(scope="module")
def fleet() -> Iterator[FakeFleetProcess]:
    with FakeFleetProcess() as fleet:
        yield fleet


def install_busy_kind(site: Path) -> None:
    """A package as pip leaves it, whose task kind's check computes for a second."""
    site.mkdir()
    (site / "busy_kind.py").write_text(BUSY_KIND)
    info = site / "busy_kind-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: busy-kind\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [rmf_task_scheduler.task_kinds]
            busy = busy_kind:BusyKind
            """
        )
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_request_that_computes_for_a_second_does_not_make_a_task_late(
    database, tmp_path, fleet, monkeypatch
):
    install_busy_kind(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    fleet.clear()
    fleet.behave()
    service = ServiceProcess(
        tmp_path,
        db_url=asyncio.run(clean_database(database, tmp_path)),
        targets={"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
    )
    service.start()
    stop, answers = threading.Event(), []

    def keep_the_api_busy() -> None:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            while not stop.is_set():
                began = time.monotonic()
                answer = client.post("/rules", json=BUSY_RULE)
                answers.append((answer.status_code, time.monotonic() - began))

    busy = threading.Thread(target=keep_the_api_busy)
    try:
        start = soon(2)
        create_rule(service, name="every second", schedule=every_second(start, 6))
        busy.start()
        wait_until(lambda: len(submissions(fleet)) >= 6, 20, "six dispatches")
    finally:
        stop.set()
        busy.join()
        service.stop()
    # each request held the API's loop for a second
    assert answers and all(status == 422 and took >= 1.0 for status, took in answers), answers
    arrived = sorted(record["time"] for record in submissions(fleet))
    lateness = [at - (start + timedelta(seconds=k)).timestamp() for k, at in enumerate(arrived)]
    assert all(-0.01 <= late < 0.25 for late in lateness), lateness


def test_a_killed_replicas_tasks_are_taken_over_within_the_default_lease(tmp_path, fleet):
    fleet.clear()
    fleet.behave({"mode": "delay", "seconds": 60, "count": 1})  # answered after the crash
    db_url = asyncio.run(clean_database("postgres", tmp_path))
    config = {
        "db_url": db_url,
        "targets": {"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 90.0}},
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServiceProcess(tmp_path / "a", replica_id="replica-a", **config)
    second = ServiceProcess(tmp_path / "b", replica_id="replica-b", **config)
    first.start()
    try:
        rule = create_rule(
            first,
            name="through a crash",
            schedule={"kind": "once", "at": soon(1).isoformat()},
            policy={"misfire_grace_s": 120, "max_execution_time_s": 90},
        )
        wait_until(lambda: len(submissions(fleet)) == 1, 10, "the dispatch to be in flight")
        first.kill()
        killed = time.monotonic()
        second.start()

        def settled() -> bool:
            status = httpx.get(f"{second.url}/rules/{rule['id']}/status").json()
            return status["last_outcome"] == "succeeded"

        wait_until(settled, 30, "the task to be taken over")
        taken_over_s = time.monotonic() - killed
        [run] = httpx.get(f"{second.url}/runs").json()["items"]
    finally:
        first.kill()
        second.stop()
    assert list(counts(fleet).values()) == [1]  # asked by label, not sent again
    assert (run["replica"], run["attempt"], run["response"]) == (
        "replica-b",
        2,
        {"found_by_label": f"task_scheduler.task={run['task_id']}"},
    )
    assert taken_over_s < 10 + 3, taken_over_s  # the lease (10 s by default) and a little
