"""The API and storage contract, run on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from task_scheduler.storage.orm import RuleRecord
from tests.integration.conftest import T0

CLEAN = {
    "kind": "rmf",
    "target": "default",
    "request": {"category": "clean", "description": {"zone": "lobby"}},
}


def rule(name: str = "lobby", **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "schedule": {"kind": "daily", "times": ["07:00"], "start": "2026-01-05T00:00:00"},
        "task": CLEAN,
    }
    body.update(overrides)
    return body


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def create(service, **overrides: Any) -> dict[str, Any]:
    response = await service.http.post("/rules", json=rule(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def tasks(service, **params: Any) -> dict[str, Any]:
    params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
    response = await service.http.get("/tasks", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def all_tasks(service, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, following its cursor page by page."""
    page = await tasks(service, **params)
    items = page["items"]
    while page["next"] is not None:
        page = await tasks(service, cursor=page["next"], limit=params.get("limit", 100))
        items += page["items"]
    return items


async def test_health_readiness_and_docs(service):
    assert (await service.http.get("/healthz")).json() == {"status": "ok"}
    ready = await service.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["pending_migrations"] == [] and ready.json()["dispatching"] is True
    assert (await service.http.get("/docs")).status_code == 200
    paths = (await service.http.get("/openapi.json")).json()["paths"]
    assert {"/rules", "/rules/{rule_id}", "/rules/preview", "/tasks", "/tasks/{task_id}"} <= set(paths)


async def test_create_get_and_defaults(service):
    created = await create(service)
    assert created["timezone"] == "UTC"
    assert created["enabled"] is True
    assert created["policy"]["max_attempts"] == 3
    assert created["next_at"] == "2026-01-06T07:00:00Z"
    fetched = (await service.http.get(f"/rules/{created['id']}")).json()
    assert fetched == created


async def test_start_defaults_to_creation_time(service):
    body = rule(schedule={"kind": "interval", "every": 90, "unit": "minutes"})
    created = (await service.http.post("/rules", json=body)).json()
    assert utc(created["schedule"]["start"]) == T0
    assert created["next_at"] == "2026-01-05T13:30:00Z"


async def test_duplicate_name_is_409_and_unknown_id_404(service):
    await create(service)
    duplicate = await service.http.post("/rules", json=rule())
    assert duplicate.status_code == 409
    assert "lobby" in duplicate.json()["detail"]
    for method, path in [
        ("GET", "/rules/999"),
        ("PUT", "/rules/999"),
        ("DELETE", "/rules/999"),
        ("POST", "/rules/999/enable"),
        ("GET", "/rules/999/preview"),
        ("GET", "/tasks/999-20260106T070000Z"),
        ("GET", "/tasks/nonsense"),
        ("GET", "/rules/99999999999"),
        ("GET", "/tasks/99999999999-20260106T070000Z"),
        ("DELETE", "/tasks/nonsense"),
    ]:
        kwargs = {"json": rule()} if method == "PUT" else {}
        response = await service.http.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)


def error_locs(response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [item["loc"] for item in response.json()["detail"]]


async def test_invalid_rules_name_the_field(service):
    post = service.http.post
    assert ["body", "timezone"] in error_locs(await post("/rules", json=rule(timezone="Mars/Olympus")))
    bad_request = {**CLEAN, "request": {"category": "clean", "description": {"zone": 7}}}
    assert ["body", "task", "request", "description", "zone"] in error_locs(
        await post("/rules", json=rule(task=bad_request))
    )
    unknown = {**CLEAN, "request": {"category": "teleport", "description": {}}}
    assert ["body", "task", "request", "category"] in error_locs(
        await post("/rules", json=rule(task=unknown))
    )
    never = {"kind": "cron", "expression": "0 0 30 2 *"}
    assert ["body", "schedule"] in error_locs(await post("/rules", json=rule(schedule=never)))
    past = {"kind": "once", "at": "2020-01-01T00:00:00"}
    assert ["body", "schedule"] in error_locs(await post("/rules", json=rule(schedule=past)))
    bad_time = {"kind": "daily", "times": ["25:00"]}
    assert any(
        loc[:2] == ["body", "schedule"]
        for loc in error_locs(await post("/rules", json=rule(schedule=bad_time)))
    )
    assert error_locs(await post("/rules", json={**rule(), "colour": "red"}))
    assert (await service.http.get("/rules")).json()["total"] == 0


async def test_list_rules_filters_and_paging(service):
    await create(service, name="Lobby clean")
    await create(
        service,
        name="Patrol night",
        task={
            "kind": "rmf",
            "request": {"category": "patrol", "description": {"places": ["a", "b"], "rounds": 1}},
        },
    )
    await create(service, name="Kitchen clean", enabled=False)
    listed = (await service.http.get("/rules", params={"category": "clean"})).json()
    assert [r["name"] for r in listed["items"]] == ["Lobby clean", "Kitchen clean"]
    assert (await service.http.get("/rules", params={"enabled": "false"})).json()["total"] == 1
    assert (await service.http.get("/rules", params={"name": "CLEAN"})).json()["total"] == 2
    page = (await service.http.get("/rules", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 3 and [r["name"] for r in page["items"]] == ["Kitchen clean"]


async def test_tasks_listing_merges_stored_and_computed(service):
    created = await create(service)
    listed = await tasks(service, start=T0, end=T0 + timedelta(days=10))
    assert listed["total"] == 10
    items = listed["items"]
    assert [i["scheduled_at"] for i in items][:2] == ["2026-01-06T07:00:00Z", "2026-01-07T07:00:00Z"]
    # The 24 h horizon stores tomorrow's occurrence; later ones are computed with stable ids.
    assert [i["materialized"] for i in items[:2]] == [True, False]
    assert all(i["rule_id"] == created["id"] and i["status"] == "scheduled" for i in items)
    computed_id = items[1]["id"]
    service.clock.advance(days=1)
    await service.expand()
    stored = (await service.http.get(f"/tasks/{computed_id}")).json()
    assert stored["materialized"] is True and stored["id"] == computed_id
    paged = await tasks(service, start=T0, end=T0 + timedelta(days=10), limit=3, offset=8)
    assert paged["total"] == 10 and len(paged["items"]) == 2


async def test_expansion_is_bounded_and_idempotent(service):
    await create(service, name="every minute", schedule={"kind": "cron", "expression": "* * * * *"})
    stored = await tasks(service, start=T0, end=T0 + timedelta(days=1), status="scheduled")
    # Creation stores one batch (100 by default) whatever the rule's length.
    first_page = stored["items"]
    assert sum(i["materialized"] for i in first_page) == 100
    # 12:01 today to 11:59 tomorrow: the 12:00 occurrence is the creation instant itself, not after it.
    day = {"start": T0, "end": T0 + timedelta(days=1), "limit": 1000}
    assert stored["total"] is None  # computed occurrences are not counted
    assert len(await all_tasks(service, **day)) == 24 * 60 - 1
    assert await service.expand() == 100
    again = await tasks(service, **day)
    assert sum(i["materialized"] for i in again["items"]) == 200
    assert len({i["id"] for i in again["items"]}) == 1000
    assert len({i["id"] for i in await all_tasks(service, **day)}) == 24 * 60 - 1
    # Expanding the same span again (a second replica, a replayed pass) stores nothing twice.
    await RuleRecord.all().update(expanded_until=T0)
    await service.expand()
    replay = await all_tasks(service, **day)
    assert sum(i["materialized"] for i in replay) == 200 and len(replay) == 24 * 60 - 1


async def test_edit_one_occurrence_then_the_series(service):
    created = await create(service)
    rid = created["id"]
    far = "2026-02-10T07:00:00Z"  # beyond the stored horizon: only computed
    far_id = f"{rid}-20260210T070000Z"
    moved = await service.http.patch(f"/tasks/{far_id}", json={"scheduled_at": "2026-02-10T09:30:00"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduled_at"] == "2026-02-10T09:30:00Z"
    assert moved.json()["original_at"] == far and moved.json()["edited"] is True
    near_id = f"{rid}-20260106T070000Z"
    own = {"category": "clean", "description": {"zone": "kitchen"}}
    patched = await service.http.patch(f"/tasks/{near_id}", json={"request": own, "enabled": False})
    assert patched.json()["request"] == {**own, "labels": []} and patched.json()["enabled"] is False
    bad = await service.http.patch(
        f"/tasks/{near_id}", json={"request": {"category": "clean", "description": {}}}
    )
    assert ["body", "request", "description"] in error_locs(bad)
    assert (
        await service.http.patch(f"/tasks/{rid}-20260106T071500Z", json={"enabled": False})
    ).status_code == 404

    replaced = await service.http.put(
        f"/rules/{rid}",
        json=rule(schedule={"kind": "daily", "times": ["08:00"], "start": "2026-01-05T00:00:00"}),
    )
    assert replaced.status_code == 200, replaced.text
    window = await tasks(service, start=T0, end=datetime(2026, 2, 11, tzinfo=timezone.utc), limit=1000)
    by_id = {i["id"]: i for i in window["items"]}
    # Edited ones keep their day, now in its 08:00 slot; the moved one keeps its new time.
    assert by_id[f"{rid}-20260106T080000Z"]["request"]["description"] == {"zone": "kitchen"}
    assert by_id[f"{rid}-20260210T080000Z"]["scheduled_at"] == "2026-02-10T09:30:00Z"
    assert near_id not in by_id and far_id not in by_id
    assert f"{rid}-20260107T070000Z" not in by_id  # untouched: regenerated at the new time
    assert f"{rid}-20260107T080000Z" in by_id
    assert window["total"] == 36  # 08:00 on Jan 6-31 and Feb 1-10, two of them edited


async def test_delete_occurrence_stays_skipped(service):
    rid = (await create(service))["id"]
    for task_id in (f"{rid}-20260106T070000Z", f"{rid}-20260301T070000Z"):
        assert (await service.http.delete(f"/tasks/{task_id}")).status_code == 204
        assert (await service.http.delete(f"/tasks/{task_id}")).status_code == 204
        got = (await service.http.get(f"/tasks/{task_id}")).json()
        assert got["status"] == "skipped" and got["status_reason"] == "deleted"
        assert (await service.http.patch(f"/tasks/{task_id}", json={"enabled": True})).status_code == 409
    await service.http.put(f"/rules/{rid}", json=rule(description="edited"))
    service.clock.advance(days=60)
    await service.expand()
    skipped = await tasks(service, start=T0, end=T0 + timedelta(days=90), status="skipped")
    assert [i["id"] for i in skipped["items"]] == [f"{rid}-20260106T070000Z", f"{rid}-20260301T070000Z"]


async def test_disable_enable_and_delete_rule(service):
    rid = (await create(service))["id"]
    kept = f"{rid}-20260108T070000Z"
    await service.http.patch(f"/tasks/{kept}", json={"scheduled_at": "2026-01-08T10:00:00Z"})
    disabled = (await service.http.post(f"/rules/{rid}/disable")).json()
    assert disabled["enabled"] is False and disabled["next_at"] is None
    listed = await tasks(service, start=T0, end=T0 + timedelta(days=10))
    assert [(i["id"], i["enabled"]) for i in listed["items"]] == [(kept, False)]
    service.clock.advance(days=2)
    assert (await service.http.post(f"/rules/{rid}/enable")).json()["next_at"] == "2026-01-08T07:00:00Z"
    listed = await tasks(service, start=T0, end=T0 + timedelta(days=10))
    # Jan 8 (moved, kept through the pause) to Jan 15: occurrences while paused are gone for good.
    assert listed["items"][0]["id"] == kept and listed["total"] == 8
    assert (await service.http.delete(f"/rules/{rid}")).status_code == 204
    assert (await service.http.get(f"/rules/{rid}")).status_code == 404
    assert (await tasks(service, start=T0, end=T0 + timedelta(days=10)))["total"] == 0


async def test_failed_change_leaves_nothing_half_written(service):
    first = await create(service, name="first")
    await create(service, name="second")
    before = await tasks(service, start=T0, end=T0 + timedelta(days=2))
    clash = await service.http.put(
        f"/rules/{first['id']}",
        json=rule(
            name="second", schedule={"kind": "daily", "times": ["09:00"], "start": "2026-01-05T00:00:00"}
        ),
    )
    assert clash.status_code == 409
    assert (await service.http.get(f"/rules/{first['id']}")).json() == first
    assert await tasks(service, start=T0, end=T0 + timedelta(days=2)) == before


async def test_preview_saved_and_unsaved_in_local_time(service):
    body = rule(
        name="berlin",
        timezone="Europe/Berlin",
        schedule={"kind": "weekly", "weekdays": ["sun"], "times": ["02:30"], "start": "2026-03-20T00:00:00"},
    )
    unsaved = await service.http.post("/rules/preview", params={"count": 2}, json=body)
    assert unsaved.status_code == 200, unsaved.text
    # 2026-03-29 is Berlin's spring-forward day: 02:30 does not exist and runs at 03:30 CEST.
    assert unsaved.json() == [
        {"utc": "2026-03-22T01:30:00Z", "local": "2026-03-22T02:30:00+01:00"},
        {"utc": "2026-03-29T01:30:00Z", "local": "2026-03-29T03:30:00+02:00"},
    ]
    rid = (await service.http.post("/rules", json=body)).json()["id"]
    saved = await service.http.get(f"/rules/{rid}/preview", params={"count": 2})
    assert saved.json() == unsaved.json()
    assert (await service.http.get(f"/rules/{rid}/preview", params={"count": 0})).status_code == 422
    service.clock.set(datetime(2026, 3, 25, tzinfo=timezone.utc))
    after_start = await service.http.get(f"/rules/{rid}/preview", params={"count": 1})
    assert after_start.json()[0]["utc"] == "2026-03-29T01:30:00Z"


async def test_window_validation(service):
    response = await service.http.get(
        "/tasks", params={"start": "2026-01-05T00:00:00+00:00", "end": "2026-01-04T00:00:00+00:00"}
    )
    assert error_locs(response) == [["query", "end"]]
    naive = await service.http.get("/tasks", params={"start": "2026-01-05T00:00:00"})
    assert naive.status_code == 422


async def test_readiness_reports_missing_migrations(tmp_path, clock):
    from task_scheduler.app import get_app
    from task_scheduler.config import build_settings

    settings = build_settings(
        {"db_url": f"sqlite://{tmp_path / 'fresh.sqlite3'}", "migrate_on_start": False}, environ={}
    )
    app = get_app(settings, clock=clock, run_background=False)
    import httpx

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 503
    from task_scheduler.storage.database import MIGRATIONS_DIR

    shipped = sorted(path.name for path in (MIGRATIONS_DIR / "models").glob("[0-9]*_*.py"))
    assert shipped == [
        "0_20261122000000_init.py",
        "1_20261122200000_dispatch.py",
        "2_20261122230000_task_target.py",
        "3_20261123090000_task_kind.py",
        "4_20261123100000_users.py",
        "5_20261206030000_health.py",
        "6_20261206070000_listing_indexes.py",
    ]
    assert ready.json()["pending_migrations"] == shipped


async def test_paging_beyond_any_database_number_is_422(service):
    for path in ("/rules", "/tasks", "/runs"):
        response = await service.http.get(path, params={"offset": 10**25})
        assert response.status_code == 422, path


async def test_a_body_over_the_limit_is_413_and_a_page_over_1000_is_422(service):
    padding = "x" * 1_048_576  # with the rest of the rule, just over max_body_bytes
    body = {
        "name": "big",
        "schedule": {"kind": "interval", "every": 60},
        "task": CLEAN,
        "description": padding,
    }
    too_big = await service.http.post("/rules", json=body)
    assert too_big.status_code == 413
    assert (await service.http.get("/rules")).json()["total"] == 0
    for path in ("/rules", "/tasks", "/runs"):
        assert (await service.http.get(path, params={"limit": 1001})).status_code == 422, path
        assert (await service.http.get(path, params={"limit": 1000})).status_code == 200, path


async def test_an_api_only_replica_runs_no_dispatcher(db_url, clock):
    import asyncio

    import httpx

    from task_scheduler.app import get_app
    from task_scheduler.config import build_settings

    settings = build_settings({"db_url": db_url, "run_dispatcher": False}, environ={})
    app = get_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        loops = {task.get_name() for task in asyncio.all_tasks()}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            ready = (await http.get("/readyz")).json()
    assert "expander" in loops and "dispatcher" not in loops
    assert ready["dispatching"] is False and ready["status"] == "ready"


async def test_a_batch_of_rules_is_created_all_or_none(service):
    batch = [rule(f"room {i}") for i in range(3)]
    made = await service.http.post("/rules/batch", json=batch)
    assert made.status_code == 201, made.text
    assert [r["name"] for r in made.json()] == ["room 0", "room 1", "room 2"]
    assert (await service.http.get("/tasks")).json()["items"]

    # One bad rule (and a name given twice) and nothing of the batch is stored.
    bad = [rule("room 3"), rule("room 4", timezone="Mars/Olympus"), rule("room 3")]
    refused = await service.http.post("/rules/batch", json=bad)
    assert refused.status_code == 422
    assert [p["loc"] for p in refused.json()["detail"]] == [["body", 1, "timezone"], ["body", 2, "name"]]
    clash = await service.http.post("/rules/batch", json=[rule("room 5"), rule("room 0")])
    assert clash.status_code == 409
    assert (await service.http.get("/rules")).json()["total"] == 3


async def test_a_batch_holds_at_most_100_rules(service):
    assert (await service.http.post("/rules/batch", json=[])).status_code == 422
    response = await service.http.post("/rules/batch", json=[rule(f"r{i}") for i in range(101)])
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]
