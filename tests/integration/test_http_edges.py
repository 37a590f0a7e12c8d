"""What every HTTP request gets: an id, per-route metrics, and CORS when configured."""

from __future__ import annotations

import httpx
import pytest

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings
from tests.integration.conftest import T0


@pytest.fixture
def make_client(tmp_path):
    async def make(**options):
        settings = build_settings({"db_url": f"sqlite://{tmp_path / 'db.sqlite3'}", **options}, environ={})
        app = get_app(settings, clock=FakeClock(T0), run_background=False)
        return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler")

    return make


async def test_every_answer_carries_a_request_id_the_callers_when_plain(make_client):
    app, http = await make_client()
    async with app.router.lifespan_context(app), http:
        given = await http.get("/rules", headers={"X-Request-ID": "dash-7f3a"})
        made = await http.get("/rules")
        hostile = await http.get("/rules", headers={"X-Request-ID": "x\ty" * 40})
    assert given.headers["x-request-id"] == "dash-7f3a"
    assert len(made.headers["x-request-id"]) == 16
    assert hostile.headers["x-request-id"] != "x\ty" * 40


async def test_requests_are_counted_and_timed_per_route_template(make_client):
    app, http = await make_client()
    async with app.router.lifespan_context(app), http:
        for rule_id in (1, 2, 3):
            assert (await http.get(f"/rules/{rule_id}")).status_code == 404
        assert (await http.get("/rules")).status_code == 200
        assert (await http.get("/no/such/path")).status_code == 404
        text = (await http.get("/metrics")).text
    assert (
        'task_scheduler_http_requests_total{method="GET",route="/rules/{rule_id}",status="404"} 3.0' in text
    )
    assert 'task_scheduler_http_requests_total{method="GET",route="/rules",status="200"} 1.0' in text
    assert 'task_scheduler_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'task_scheduler_http_request_duration_seconds_count{method="GET",route="/rules"} 1.0' in text


async def test_cors_is_off_by_default(make_client):
    app, http = await make_client()
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    async with app.router.lifespan_context(app), http:
        answer = await http.options("/scheduled_tasks", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers


async def test_cors_lets_the_configured_origin_preflight_and_call(make_client):
    app, http = await make_client(cors_origins=["https://dash.example"])
    preflight = {
        "Origin": "https://dash.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with app.router.lifespan_context(app), http:
        allowed = await http.options("/rules", headers=preflight)
        other = await http.options("/rules", headers={**preflight, "Origin": "https://evil.example"})
        call = await http.get("/rules", headers={"Origin": "https://dash.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert call.headers["access-control-allow-origin"] == "https://dash.example"
    assert "x-request-id" in call.headers["access-control-expose-headers"].lower()


def test_a_cors_origin_must_be_an_origin():
    from task_scheduler.config import ConfigError

    with pytest.raises(ConfigError, match=r"cors_origins: .*is not an origin"):
        build_settings({"cors_origins": ["https://dash.example/path"]}, environ={})
