"""The RMF dashboard's scheduling calls against a real service process and a fake fleet
process, in UTC and in UTC+8 (with the dashboard's RS256 tokens): each scheduled task
reaches the fleet once, on time, as the api-server would send it, schema-valid."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jwt
import pytest

from task_scheduler.domain.messages import RULE_LABEL, TASK_LABEL
from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess
from tests.e2e.dashboard_client import TASK_FORM_REQUEST, WEEKDAYS, DashboardClient
from tests.keys import rsa_pair

pytestmark = pytest.mark.e2e
ISSUER = "https://sso.example/realms/rmf-web"


@pytest.fixture(scope="module")
def fleet() -> Iterator[FakeFleetProcess]:
    with FakeFleetProcess() as fleet:
        yield fleet


@pytest.fixture(params=["UTC", "Asia/Singapore"])
def dashboard(request, tmp_path: Path, fleet: FakeFleetProcess) -> Iterator[DashboardClient]:
    """The service as a process in this zone; in UTC+8 behind the dashboard's identity provider."""
    fleet.clear()
    fleet.behave()
    zone = request.param
    config: dict[str, Any] = {
        "timezone": zone,
        "targets": {"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
    }
    token = None
    if zone != "UTC":
        key, public = rsa_pair()
        config.update(
            auth_enabled=True,
            auth_jwt_secret="a-test-secret-that-is-long-enough-0123456789",
            auth_external_public_key=public,
            auth_external_issuer=ISSUER,
            auth_external_role_claim="realm_access.roles",
            auth_external_role_map={"rmf-operator": "operator"},
        )
        claims = {
            "preferred_username": "alice",
            "aud": "rmf_api_server",
            "iss": ISSUER,
            "exp": int(time.time()) + 600,
            "realm_access": {"roles": ["rmf-operator"]},
        }
        token = jwt.encode(claims, key, algorithm="RS256")
    process = ServiceProcess(tmp_path, **config)
    process.start()
    client = DashboardClient(process.url, zone, token)
    try:
        yield client
    finally:
        client.close()
        process.stop()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def soon(zone: ZoneInfo, seconds: int) -> datetime:
    """A whole second at least ``seconds`` ahead, local; the test waits past local midnight."""
    moment = (datetime.now(zone) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(seconds=1)
    if moment.date() != (moment + timedelta(seconds=10)).date():
        time.sleep(12)
        return soon(zone, seconds)
    return moment


def test_the_dashboards_calls_reach_the_fleet_once_on_time(dashboard, fleet):
    zone = dashboard.zone
    first_at = soon(zone, 2)
    today = first_at.date()
    monday = today - timedelta(days=today.weekday())
    dashboard.schedule_task(TASK_FORM_REQUEST, list(WEEKDAYS), first_at.strftime("%H:%M:%S"))

    [task] = dashboard.calendar_week(monday)
    assert task["created_by"] == ("anonymous" if zone.key == "UTC" else "alice")
    events = dashboard.occurrences(task, monday)
    assert first_at.replace(second=0) in events and len(events) == 7  # no start_from: drawn all week

    # Delete tomorrow's occurrence; edit next week's (a new weekly series, today's weekday).
    dashboard.delete_occurrence(task["id"], first_at + timedelta(days=1))
    second_at = soon(zone, 3)
    edited = {**TASK_FORM_REQUEST, "description": {"places": ["lobby"], "rounds": 2}}
    dashboard.edit_occurrence(task, first_at + timedelta(days=7), edited, second_at.strftime("%H:%M:%S"))
    week = {t["id"]: t for t in dashboard.calendar_week(monday)}
    [single] = set(week) - {task["id"]}
    later = [(first_at + timedelta(days=n)).date().isoformat() for n in (1, 7)]
    assert week[task["id"]]["except_dates"] == later

    wait_until(lambda: len(fleet.counts(RULE_LABEL)) == 2, 15, "both tasks at the fleet")
    received = {r["labels"][-2]: r for r in fleet.received() if r["route"].startswith("POST")}
    for rule_id, due, request in ((task["id"], first_at, TASK_FORM_REQUEST), (single, second_at, edited)):
        arrival = received[f"{RULE_LABEL}={rule_id}"]
        assert arrival["problems"] == [] and arrival["status"] == 200
        assert -0.01 <= arrival["time"] - due.timestamp() < 0.5
        body = arrival["body"]
        assert body["type"] == "dispatch_task_request"
        sent = body["request"]
        assert {k: v for k, v in sent.items() if k != "labels"} == {
            k: v for k, v in request.items() if k != "labels"
        }
        assert sent["labels"][:2] == request["labels"] and len(sent["labels"]) == 4

    listed = {t["id"]: t for t in dashboard.calendar_week(monday)}
    ran = datetime.fromisoformat(listed[task["id"]]["last_ran"].replace("Z", "+00:00"))
    assert abs(ran - first_at) < timedelta(seconds=1)

    # Edit the series: the deleted days stay deleted.
    series = dashboard.edit_series(listed[task["id"]], ["monday", "friday"], "09:00")
    assert series["id"] == task["id"] and series["except_dates"] == later
    for task_id in (task["id"], single):
        dashboard.delete_series(task_id)
    assert dashboard.calendar_week(monday) == []
    assert sorted(fleet.counts(TASK_LABEL).values()) == [1, 1]
    assert datetime.now(timezone.utc) < first_at + timedelta(seconds=30)  # the test did not wait long
