"""Listing by kind and target, and the bulk deletes, on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from task_scheduler.storage.orm import RuleRecord, TaskRecord
from tests.integration.conftest import T0
from tests.integration.test_api_contract import CLEAN, create, tasks

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
