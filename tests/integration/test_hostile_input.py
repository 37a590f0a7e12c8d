"""Input no database can hold, on each database: refused with 422 (or 404 for an id that
cannot exist) before anything is written, never a 500; a row stored before these checks
still lists. The limits themselves are pinned in tests/unit/test_storable.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.rules import NewRule
from task_scheduler.domain.storable import text_problem
from task_scheduler.storage.orm import RuleRecord, RunRecord, TaskRecord
from tests.integration.conftest import Secured, Service
from tests.integration.test_authorization import handshake

EVERY_10_S = {"kind": "interval", "every": 10, "unit": "seconds"}
HTTP_TASK = {"kind": "http", "url": "http://127.0.0.1:9/ping"}
LOBBY = {"zone": "lobby"}
LONG_ID = "7-" + "1" * 80  # longer than any id column


def nested(depth: int) -> Any:
    """A document ``depth`` levels deep: {"a": {"a": ... "x"}}."""
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "lobby", "schedule": EVERY_10_S, "task": HTTP_TASK, **fields}


async def post_raw(service: Service, path: str, document: Any, **kwargs: Any):
    """POST JSON as Python writes it: lone surrogates as \\u escapes, NaN and Infinity bare."""
    body = json.dumps(document)  # ensure_ascii and allow_nan: what a careless client sends
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return await service.http.post(path, content=body, headers=headers, **kwargs)


async def assert_no_rules(service: Service) -> None:
    listing = await service.http.get("/rules")
    assert listing.status_code == 200 and listing.json()["total"] == 0, listing.text
    assert (await service.http.get("/tasks")).status_code == 200


async def test_metadata_nested_too_deep_is_422_and_nothing_is_stored(service: Service):
    response = await service.http.post("/rules", json=rule(metadata=nested(500)))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"][:2] == ["body", "metadata"] and "nested deeper than 32 levels" in problem["msg"]
    await assert_no_rules(service)
    # 32 levels, the metadata object the first and the string the last, is the most kept.
    response = await service.http.post("/rules", json=rule(metadata=nested(32)))
    assert response.status_code == 422, response.text
    response = await service.http.post("/rules", json=rule(metadata=nested(31)))
    assert response.status_code == 201, response.text
    assert (await service.http.get(f"/rules/{response.json()['id']}")).json()["metadata"] == nested(31)


@pytest.mark.parametrize(
    ("fields", "loc", "reason"),
    [
        ({"metadata": {"note": "\udfff"}}, ["body", "metadata", "note"], "lone surrogate"),
        ({"task": {**HTTP_TASK, "body": {"a": ["\ud800"]}}}, ["body", "task", "body", "a", 0], "surrogate"),
        ({"metadata": {"note": "a\x00b"}}, ["body", "metadata", "note"], "NUL"),
        ({"name": "lobby\x00"}, ["body", "name"], "NUL"),
        ({"description": "\x00"}, ["body", "description"], "NUL"),
        ({"metadata": {"x": float("nan")}}, ["body", "metadata", "x"], "NaN and Infinity"),
        ({"task": {**HTTP_TASK, "body": {"n": float("inf")}}}, ["body", "task", "body", "n"], "NaN"),
    ],
)
async def test_what_no_database_holds_is_422_naming_the_field(service: Service, fields, loc, reason):
    response = await post_raw(service, "/rules", rule(**fields))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc and reason in problem["msg"]
    await assert_no_rules(service)


async def test_a_rule_from_elsewhere_than_a_json_body_is_checked_too(service: Service):
    """An .ics import or the dashboard's contract makes rules without the request check."""
    spec = NewRule.model_validate(rule(description="a\x00"))
    with pytest.raises(Invalid) as refused:
        await service.services.rules.create(spec, by=None)
    assert refused.value.problems == [(("description",), text_problem("\x00"))]
    await assert_no_rules(service)


async def test_a_document_over_64_kib_is_422(service: Service):
    response = await service.http.post("/rules", json=rule(metadata={"blob": "x" * 70_000}))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "metadata"]
    await assert_no_rules(service)


async def test_an_occurrences_own_request_and_a_target_are_checked_too(service: Service):
    created = await service.http.post(
        "/rules", json=rule(task={"kind": "rmf", "request": {"category": "clean", "description": LOBBY}})
    )
    assert created.status_code == 201, created.text
    [task] = (await service.http.get("/tasks", params={"limit": 1})).json()["items"]
    request = {"category": "clean", "description": {**LOBBY, "note": nested(40)}}
    response = await service.http.patch(f"/tasks/{task['id']}", json={"request": request})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:3] == ["body", "request", "description"]
    assert (await service.http.get(f"/tasks/{task['id']}")).json()["edited"] is False

    target = {"name": "site", "config": {"kind": "http", "base_url": "http://127.0.0.1:9"}}
    target["config"]["headers"] = {"X-Note": "a\x00"}
    response = await service.http.post("/targets", json=target)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "config", "headers", "X-Note"]
    assert (await service.http.get("/targets/site")).status_code == 404


async def test_nul_in_a_query_or_path_parameter_is_422(service: Service):
    for url, loc in [
        ("/rules?name=a%00", ["query", "name"]),
        ("/tasks?category=%00", ["query", "category"]),
        ("/runs?task_id=a%00", ["query", "task_id"]),
        ("/tasks/a%00b", ["path", "task_id"]),
        ("/targets/a%00b", ["path", "name"]),
        ("/timers/timer-%00", ["path", "timer_id"]),
    ]:
        response = await service.http.get(url)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["detail"][0]["loc"] == loc, url


async def test_nul_in_an_unauthenticated_login_is_422_and_closes_the_event_stream(secured: Secured):
    response = await secured.login("a\x00", "whatever")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "username"]
    [refused, *_] = await handshake(secured.app, f"token={secured.tokens[Role.viewer]}&channel=a%00")
    assert refused["type"] == "websocket.close" and refused["code"] == 1008
    assert refused["reason"].startswith("query channel: contains a NUL character")


async def test_an_id_longer_than_any_stored_one_is_404(secured: Secured):
    admin = secured.auth(Role.admin)
    long_name = "t" * 300
    for method, url, body in [
        ("GET", f"/tasks/{LONG_ID}", None),
        ("GET", f"/tasks/{LONG_ID}/runs", None),
        ("PATCH", f"/tasks/{LONG_ID}", {"enabled": False}),
        ("DELETE", f"/tasks/{LONG_ID}", None),
        ("POST", f"/tasks/{LONG_ID}/dispatch", None),
        ("GET", "/timers/timer-" + "1" * 80, None),
        ("GET", f"/targets/{long_name}", None),
        ("PUT", f"/targets/{long_name}", {"kind": "http", "base_url": "http://127.0.0.1:9"}),
        ("DELETE", f"/targets/{long_name}", None),
        ("PATCH", f"/users/{long_name}", {"enabled": False}),
        ("DELETE", f"/users/{long_name}", None),
        ("GET", f"/rules/{2**40}", None),
    ]:
        response = await secured.http.request(method, url, json=body, headers=admin)
        assert response.status_code == 404, (method, url, response.text)
    listing = await secured.http.get("/runs", params={"task_id": LONG_ID}, headers=admin)
    assert listing.status_code == 200 and listing.json()["total"] == 0


async def test_a_stored_row_that_cannot_be_shown_still_lists_with_a_marker(service: Service, db_url: str):
    """Rows written before these checks (or by hand) render: what cannot be shown is replaced."""
    if db_url.startswith("mysql"):
        pytest.skip("MariaDB itself refuses JSON nested deeper than 32 levels, so no such row exists")
    created = (await service.http.post("/rules", json=rule(metadata={"ok": 1}))).json()
    bad: Any = nested(300)
    if db_url.startswith("sqlite"):
        bad = {"deep": bad, "surrogate": "\udfff"}  # SQLite keeps JSON text as written
    await RuleRecord.filter(id=created["id"]).update(metadata=bad)
    [task] = await TaskRecord.filter(rule_id=created["id"]).limit(1)
    await RunRecord.create(
        task_id=task.id,
        rule_id=created["id"],
        attempt=1,
        started_at=service.clock.now(),
        finished_at=service.clock.now(),
        duration_ms=1.0,
        outcome="succeeded",
        response=bad,
        replica="elsewhere",
    )

    listing = await service.http.get("/rules")
    assert listing.status_code == 200, listing.text
    [shown] = listing.json()["items"]
    assert "nested deeper than 32 levels" in json.dumps(shown["metadata"])
    assert (await service.http.get(f"/rules/{created['id']}")).status_code == 200
    if db_url.startswith("sqlite"):
        assert shown["metadata"]["surrogate"] == "\ufffd"
    runs = await service.http.get("/runs")
    assert runs.status_code == 200, runs.text
    assert "nested deeper than 32 levels" in json.dumps(runs.json()["items"][0]["response"])
    assert (await service.http.get(f"/rules/{created['id']}/status")).status_code == 200


async def test_a_sub_daily_rule_on_days_decades_apart_is_created_at_once(service: Service):
    """Its first occurrence is 2044-02-29: plain dateutil steps through every day before it."""
    text = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23;BYMINUTE=59;BYSECOND=59"
    spent = time.process_time()
    created = await service.http.post(
        "/rules", json=rule(schedule={"kind": "rrule", "rrule": text}, timezone="UTC")
    )
    assert created.status_code == 201, created.text
    assert created.json()["next_at"].startswith("2044-02-29T23:59:59")
    assert time.process_time() - spent < 1


async def test_a_sub_daily_rule_dateutil_would_search_for_long_is_422_at_once(service: Service):
    """Its days are up to 40 years apart: every minute of each day between costs dateutil."""
    text = "FREQ=MINUTELY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23"
    slow = rule(schedule={"kind": "rrule", "rrule": text}, timezone="UTC")
    spent = time.process_time()
    refused = await service.http.post("/rules", json=slow)
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "schedule", "rrule"]
    assert problem["msg"].startswith(f"line 1 ({text}) has days up to 14609 days apart")
    await assert_no_rules(service)
    created = await service.http.post("/rules", json=rule())
    edited = await service.http.put(f"/rules/{created.json()['id']}", json=slow)
    assert edited.status_code == 422 and edited.json()["detail"] == [problem], edited.text
    assert time.process_time() - spent < 0.5
