"""http tasks and timers end to end: a real web server on loopback, each database, a fake clock.

The dispatcher is driven pass by pass (``dispatch()``); the web server is real, so what it
received is what the service sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.events import EventType
from task_scheduler.testing.service_process import free_port
from tests.integration.conftest import T0, Service

EVERY_10_S = {"kind": "interval", "every": 10, "unit": "seconds"}
API_KEY = "s3cret-api-key"
TOKEN = "t0ken-of-the-echoing-target"


@dataclass
class Web:
    """A real HTTP server; ``calls`` holds what it received, in order."""

    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def web_server() -> AsyncIterator[Web]:
    state = Web(url="")

    async def record(request: web.Request) -> None:
        state.calls.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )

    async def health(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="status: OK version=1.2.3 build=77", status=state.status)

    async def report(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"queue": 4, "robots": ["r1", "r2"]})

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def ring(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/health", health)
    app.router.add_get("/report", report)
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/ring", ring)

    async def elsewhere(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("http://10.1.2.3/metadata")

    app.router.add_get("/elsewhere", elsewhere)

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(text="a" * 5000 + "b")

    app.router.add_get("/hostile", hostile)

    async def echo(request: web.Request) -> web.Response:
        """Says back what it received, as debugging endpoints and some error pages do."""
        await record(request)
        headers = dict(request.headers)
        status = 500 if request.query.get("fail") else 200
        return web.json_response({"headers": headers, "seen": f"you sent {headers}"}, status=status)

    app.router.add_route("*", "/echo", echo)

    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    async def unstorable(request: web.Request) -> web.Response:
        text = '{"nul": "a\\u0000b", "nan": NaN, "surrogate": "\\udfff"}'
        return web.Response(text=text, content_type="application/json")

    async def nul(request: web.Request) -> web.Response:
        return web.Response(text="a\x00b")

    app.router.add_get("/deep", deep)
    app.router.add_get("/unstorable", unstorable)
    app.router.add_get("/nul", nul)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def _settings(db_url: str, web_url: str, **options: Any):
    targets = {
        "default": {"kind": "rmf_http", "base_url": "http://127.0.0.1:9"},
        "status": {
            "kind": "http",
            "base_url": web_url,
            "headers": {"Accept": "text/plain"},
            "secret_headers": {"X-Api-Key": API_KEY},
            "timeout_s": 2.0,
        },
    }
    return build_settings({"db_url": db_url, "targets": targets, **options}, environ={})


@pytest.fixture
async def engine(db_url, clock, web_server) -> AsyncIterator[Service]:
    app = get_app(_settings(db_url, web_server.url), clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            yield Service(app=app, clock=clock, http=http)


async def create(engine: Service, task: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {"name": "check", "schedule": EVERY_10_S, "task": task, **overrides}
    response = await engine.http.post("/rules", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def runs(engine: Service, **params: Any) -> list[dict[str, Any]]:
    return (await engine.http.get("/runs", params=params)).json()["items"]


async def test_a_url_checked_every_10_s_keeps_status_matches_and_reports_on_its_channel(engine, web_server):
    seen = []
    engine.services.events.stream.subscribe(seen.append)
    task = {"kind": "http", "url": f"{web_server.url}/health", "regex": r"version=(\d+)\.(\d+)"}
    rule = await create(engine, task, send_to="checks")
    assert rule["channel"] == "checks"
    for _ in range(3):
        engine.clock.advance(seconds=10)
        assert await engine.dispatch() == 1

    assert len(web_server.calls) == 3 and all(call["method"] == "GET" for call in web_server.calls)
    history = await runs(engine, rule_id=rule["id"])
    assert [run["outcome"] for run in history] == ["succeeded"] * 3
    response = history[0]["response"]
    assert response["status"] == 200 and response["matches"] == [["1", "2"]]
    assert response["body"] == "status: OK version=1.2.3 build=77"
    finished = [e for e in seen if e.type is EventType.run_finished and e.channel == "checks"]
    assert len(finished) == 3 and finished[0].data["response"]["matches"] == [["1", "2"]]
    # Each call says which occurrence it is, so the receiver can tell a repeat.
    first = web_server.calls[0]["headers"]
    assert first["X-Task-Scheduler-Task"] == f"{rule['id']}-{(T0 + timedelta(seconds=10)):%Y%m%dT%H%M%SZ}"


async def test_json_answers_are_parsed_into_the_run(engine, web_server):
    await create(engine, {"kind": "http", "target": "status", "path": "/report"})
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    [run] = await runs(engine)
    assert run["response"]["json"] == {"queue": 4, "robots": ["r1", "r2"]}


async def test_an_answer_nested_100k_deep_is_recorded_with_an_excerpt_and_why_its_json_is_left_out(
    engine, web_server
):
    await create(engine, {"kind": "http", "target": "status", "path": "/deep"})
    engine.clock.advance(seconds=10)
    assert await engine.dispatch() == 1
    [run] = await runs(engine)
    assert run["outcome"] == "succeeded"
    assert run["response"]["json_error"] == "the JSON is nested deeper than 32 levels"
    assert "json" not in run["response"] and run["response"]["body"].startswith("[[[[")
    [task] = (await engine.http.get("/tasks", params={"status": "dispatched"})).json()["items"]
    assert task["status"] == "dispatched"


async def test_an_answer_no_database_can_hold_is_recorded_made_storable(engine, web_server):
    await create(engine, {"kind": "http", "target": "status", "path": "/unstorable"})
    await create(engine, {"kind": "http", "target": "status", "path": "/nul"}, name="nul")
    engine.clock.advance(seconds=10)
    assert await engine.dispatch() == 2
    answers = {run["response"]["body"][:1]: run for run in await runs(engine)}
    assert [run["outcome"] for run in answers.values()] == ["succeeded"] * 2
    assert answers["{"]["response"]["json"] == {"nul": "a\ufffdb", "nan": "nan", "surrogate": "\ufffd"}
    assert "NaN and Infinity were kept as strings" in answers["{"]["response"]["json_note"]
    assert answers["a"]["response"]["body"] == "a\ufffdb"


async def test_a_targets_secret_headers_are_sent_but_never_shown_or_kept(engine, web_server):
    await create(
        engine,
        {"kind": "http", "target": "status", "path": "/health?deep=1", "method": "POST", "body": {"a": 1}},
    )
    engine.clock.advance(seconds=10)
    await engine.dispatch()

    [call] = web_server.calls
    assert call["path"] == "/health?deep=1" and call["method"] == "POST" and call["body"] == '{"a": 1}'
    assert call["headers"]["X-Api-Key"] == API_KEY and call["headers"]["Accept"] == "text/plain"
    target = (await engine.http.get("/targets/status")).json()
    assert API_KEY not in str(target) and target["config"]["secrets_set"] == ["secret_headers"]
    for path in ("/runs", "/rules", "/tasks"):
        assert API_KEY not in (await engine.http.get(path)).text


async def test_a_targets_secrets_echoed_by_its_server_are_redacted_in_the_run_and_event(engine, web_server):
    seen = []
    engine.services.events.stream.subscribe(seen.append)
    secrets = {"token": TOKEN, "secret_headers": {"X-Api-Key": API_KEY}}
    echoing = {"name": "echoing", "config": {"kind": "http", "base_url": web_server.url, **secrets}}
    assert (await engine.http.post("/targets", json=echoing)).status_code == 201
    await create(engine, {"kind": "http", "target": "echoing", "path": "/echo"})
    await create(engine, {"kind": "http", "target": "echoing", "path": "/echo?fail=1"}, name="failing")
    engine.clock.advance(seconds=10)
    assert await engine.dispatch() == 2

    assert {call["headers"]["Authorization"] for call in web_server.calls} == {f"Bearer {TOKEN}"}
    history = await runs(engine)
    assert sorted(run["outcome"] for run in history) == ["failed", "succeeded"]
    for run in history:
        echoed = run["response"]["json"]
        assert echoed["headers"]["Authorization"] == "Bearer [redacted]"
        assert echoed["headers"]["X-Api-Key"] == "[redacted]"
        assert "[redacted]" in run["response"]["body"] and "[redacted]" in echoed["seen"]
    everything = (await engine.http.get("/runs")).text + str([event.data for event in seen])
    assert TOKEN not in everything and API_KEY not in everything


async def test_a_server_error_is_retried_and_a_refusal_is_not(engine, web_server):
    web_server.status = 503
    rule = await create(
        engine, {"kind": "http", "url": f"{web_server.url}/health"}, policy={"retry_backoff_s": 1}
    )
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    [run] = await runs(engine)
    assert run["outcome"] == "failed" and run["error"] == "HTTP 503 Service Unavailable"
    assert run["response"]["status"] == 503
    task_id = run["task_id"]
    assert (await engine.http.get(f"/tasks/{task_id}")).json()["status"] == "scheduled"  # a retry is due

    web_server.status = 404
    engine.clock.advance(seconds=1.5)
    await engine.dispatch()
    task = (await engine.http.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "failed" and "HTTP 404" in task["status_reason"]
    assert [r["outcome"] for r in await runs(engine, rule_id=rule["id"])] == ["rejected", "failed"]


async def test_a_body_the_regex_does_not_match_fails_when_the_rule_says_so(engine, web_server):
    task = {
        "kind": "http",
        "url": f"{web_server.url}/health",
        "regex": "status: DOWN",
        "fail_if_no_match": True,
    }
    await create(engine, task, policy={"max_attempts": 1})
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    [run] = await runs(engine)
    assert run["outcome"] == "failed" and run["error"] == "HTTP 200 OK, but the regex found no match"
    assert run["response"]["matches"] == []


async def test_a_hostile_pattern_is_cut_off_by_its_time_limit(engine, web_server):
    task = {"kind": "http", "url": f"{web_server.url}/hostile", "regex": "(a|aa)+$"}
    await create(engine, task, policy={"max_attempts": 1})
    engine.clock.advance(seconds=10)
    started = time.perf_counter()
    await engine.dispatch()
    assert time.perf_counter() - started < 2  # unbounded, this pattern runs for ages on 5,000 a's
    [run] = await runs(engine)
    assert run["outcome"] == "failed" and "regex took longer than 0.1 s" in run["error"]


async def test_max_execution_time_cuts_a_call_short_and_only_a_safe_method_is_tried_again(engine, web_server):
    policy = {"max_execution_time_s": 0.2, "retry_backoff_s": 1}
    get = await create(engine, {"kind": "http", "url": f"{web_server.url}/slow"}, policy=policy)
    post = await create(
        engine,
        {"kind": "http", "url": f"{web_server.url}/slow", "method": "POST"},
        name="post",
        policy=policy,
    )
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    for rule, status in ((get, "scheduled"), (post, "failed")):
        [run] = await runs(engine, rule_id=rule["id"])
        assert run["outcome"] == "timeout" and "max_execution_time_s (0.2 s)" in run["error"]
        assert (await engine.http.get(f"/tasks/{run['task_id']}")).json()["status"] == status


@pytest.mark.parametrize(
    ("task", "where", "reason"),
    [
        (
            {"kind": "http", "url": "http://127.0.0.1/x", "regex": "(unclosed"},
            ["task", "regex"],
            "not a valid pattern",
        ),
        ({"kind": "http", "path": "/x"}, ["task"], "path needs a target"),
        (
            {"kind": "http", "target": "status", "url": "http://127.0.0.1/x"},
            ["task"],
            "url goes without a target",
        ),
        (
            {"kind": "http", "target": "default", "path": "/x"},
            ["task", "target"],
            "'default' is a rmf_http target",
        ),
        (
            {"kind": "http", "target": "nowhere", "path": "/x"},
            ["task", "target"],
            "no target named 'nowhere'",
        ),
        (
            {"kind": "http", "url": "ftp://127.0.0.1/x"},
            ["task", "url"],
            "scheme must be http or https",
        ),
        ({"kind": "carrier_pigeon", "target": "default"}, ["task", "kind"], "no task kind 'carrier_pigeon'"),
        (
            {
                "kind": "rmf",
                "target": "status",
                "request": {"category": "clean", "description": {"zone": "a"}},
            },
            ["task", "target"],
            "rmf tasks go through rmf_http or rmf_ws",
        ),
    ],
)
async def test_a_bad_task_is_refused_naming_the_field(engine, task, where, reason):
    response = await engine.http.post("/rules", json={"name": "bad", "schedule": EVERY_10_S, "task": task})
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    # The location without "body" and the kind's tag that pydantic puts in.
    places = [[part for part in p["loc"] if part not in ("body", "http", "rmf")] for p in problems]
    assert where in [place[: len(where)] for place in places], problems
    assert any(reason in p["msg"] for p in problems), problems


async def test_run_now_start_delay_and_count(engine, web_server):
    task = {"kind": "http", "url": f"{web_server.url}/health"}
    rule = await create(engine, task, run_now=True, start_delay_s=60, schedule={**EVERY_10_S, "count": 2})
    assert rule["schedule"]["start"].startswith((T0 + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert await engine.dispatch() == 1  # the run at creation
    engine.clock.advance(seconds=59)
    assert await engine.dispatch() == 0
    engine.clock.advance(seconds=16)
    assert await engine.dispatch() == 2  # the two counted occurrences (60 s and 70 s), then no more
    engine.clock.advance(seconds=100)
    assert await engine.dispatch() == 0
    assert len(web_server.calls) == 3


async def test_outbound_calls_only_reach_hosts_the_allowlist_names(db_url, clock, web_server):
    port = web_server.url.rsplit(":", 1)[1]
    app = get_app(
        _settings(db_url, web_server.url, outbound_allowlist=["10.0.0.0/8"]),
        clock=clock,
        run_background=False,
    )
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            engine = Service(app=app, clock=clock, http=http)
            address = {
                "name": "address",
                "schedule": EVERY_10_S,
                "task": {"kind": "http", "url": web_server.url},
            }
            refused = await http.post("/rules", json=address)
            await create(engine, {"kind": "http", "url": f"http://localhost:{port}/health"}, name="name")
            await create(engine, {"kind": "http", "target": "status", "path": "/health"}, name="target")
            engine.clock.advance(seconds=10)
            await engine.dispatch()
            history = await runs(engine)
    assert refused.status_code == 422  # an address is refused when the rule is saved
    assert refused.json()["detail"][0]["msg"] == "127.0.0.1 is not in outbound_allowlist"
    assert web_server.calls == []
    assert len(history) == 2 and {run["outcome"] for run in history} == {"rejected"}
    assert all("not in outbound_allowlist" in run["error"] for run in history), history


async def test_tricks_around_the_allowlist_do_not_work(db_url, clock, web_server):
    port = web_server.url.rsplit(":", 1)[1]
    settings = _settings(db_url, web_server.url, outbound_allowlist=["10.0.0.0/8"])
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            engine = Service(app=app, clock=clock, http=http)
            addresses = {
                "decimal": f"http://2130706433:{port}/health",  # 127.0.0.1 written as one number
                "mapped": f"http://[::ffff:127.0.0.1]:{port}/health",
                "fullwidth": f"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/health",
            }
            answers = {
                name: await http.post(
                    "/rules",
                    json={"name": name, "schedule": EVERY_10_S, "task": {"kind": "http", "url": url}},
                )
                for name, url in addresses.items()
            }
            # A name is created, and refused when it resolves to 127.0.0.1.
            await create(engine, {"kind": "http", "url": f"http://LOCALHOST:{port}/health"}, name="shouted")
            engine.clock.advance(seconds=10)
            await engine.dispatch()
            history = await runs(engine)
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(addresses, 422)
    assert all(a.json()["detail"][0]["loc"] == ["body", "task", "url"] for a in answers.values())
    assert web_server.calls == []
    assert {run["outcome"] for run in history} == {"rejected"} and len(history) == 1, history


async def test_a_redirect_is_not_followed(engine, web_server):
    await create(engine, {"kind": "http", "url": f"{web_server.url}/elsewhere"}, policy={"max_attempts": 1})
    engine.clock.advance(seconds=10)
    await engine.dispatch()
    [run] = await runs(engine)
    assert run["outcome"] == "rejected" and run["response"]["status"] == 302
    assert [call["path"] for call in web_server.calls] == ["/elsewhere"]


async def test_a_name_is_allowed_by_name_or_by_every_address_it_resolves_to(db_url, clock, web_server):
    port = web_server.url.rsplit(":", 1)[1]
    for allowlist in (["localhost"], ["127.0.0.0/8", "::1"]):
        web_server.calls.clear()
        app = get_app(
            _settings(db_url, web_server.url, outbound_allowlist=allowlist), clock=clock, run_background=False
        )
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
                engine = Service(app=app, clock=clock, http=http)
                rule = await create(engine, {"kind": "http", "url": f"http://localhost:{port}/health"})
                engine.clock.advance(seconds=10)
                await engine.dispatch()
                await http.delete(f"/rules/{rule['id']}")
        assert len(web_server.calls) == 1, allowlist


async def test_a_timer_calls_its_url_once_and_shows_in_tasks_and_runs(engine, web_server):
    engine.clock.advance(seconds=0.0004567)  # a timer is due at a whole millisecond, like any task
    made = await engine.http.post(
        "/timers", json={"minutes": 5, "seconds": 3, "url": f"{web_server.url}/ring"}
    )
    assert made.status_code == 201, made.text
    timer = made.json()
    assert timer["due_at"].endswith(":05:03Z")
    assert (
        timer["seconds_left"] == 303 and timer["id"].startswith("timer-") and timer["status"] == "scheduled"
    )

    engine.clock.advance(seconds=100.5)
    assert (await engine.http.get(f"/timers/{timer['id']}")).json()["seconds_left"] == 203
    assert await engine.dispatch() == 0
    engine.clock.advance(seconds=202.5)
    assert await engine.dispatch() == 1
    after = (await engine.http.get(f"/timers/{timer['id']}")).json()
    assert after["seconds_left"] == 0 and after["status"] == "dispatched"
    [call] = web_server.calls
    assert call["method"] == "POST" and call["path"] == "/ring" and timer["id"] in call["body"]
    task = (await engine.http.get(f"/tasks/{timer['id']}")).json()
    assert task["rule_id"] is None and task["request"]["url"] == f"{web_server.url}/ring"
    [run] = (await engine.http.get(f"/tasks/{timer['id']}/runs")).json()
    assert run["outcome"] == "succeeded" and run["response"]["status"] == 204
    engine.clock.advance(seconds=3600)
    assert await engine.dispatch() == 0 and len(web_server.calls) == 1


async def test_a_timer_moved_over_the_tasks_api_fires_at_its_new_time(engine, web_server):
    timer = (await engine.http.post("/timers", json={"minutes": 5, "url": f"{web_server.url}/ring"})).json()
    later = (T0 + timedelta(minutes=10)).isoformat()
    assert (await engine.http.patch(f"/tasks/{timer['id']}", json={"scheduled_at": later})).status_code == 200
    assert (await engine.http.get(f"/timers/{timer['id']}")).json()["seconds_left"] == 600
    engine.clock.advance(minutes=5)
    assert await engine.dispatch() == 0  # not at its old time
    engine.clock.advance(minutes=5)
    assert await engine.dispatch() == 1 and len(web_server.calls) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"minutes": -1, "url": "http://127.0.0.1/x"},
        {"seconds": 1.5, "url": "http://127.0.0.1/x"},
        {"seconds": "5", "url": "http://127.0.0.1/x"},
        {"hours": 10_000, "url": "http://127.0.0.1/x"},
        {"seconds": 5},
        {"seconds": 5, "url": "file:///etc/passwd"},
        {"seconds": 5, "url": "http://10.1.2.3/x"},
    ],
)
async def test_a_bad_timer_is_422(engine, body):
    assert (await engine.http.post("/timers", json=body)).status_code == 422


async def test_an_unknown_timer_is_404(engine):
    for timer_id in ("timer-0123", "1-20260105T120000Z", "x" * 300):
        assert (await engine.http.get(f"/timers/{timer_id}")).status_code == 404


async def test_unused_targets_are_listed_and_deleted_in_bulk_while_used_ones_stay(engine, web_server):
    for name in ("spare", "in-use", "spare-2"):
        made = await engine.http.post(
            "/targets", json={"name": name, "config": {"kind": "http", "base_url": web_server.url}}
        )
        assert made.status_code == 201, made.text
    await create(engine, {"kind": "http", "target": "in-use", "path": "/health"})
    listed = {t["name"]: t["used_by"] for t in (await engine.http.get("/targets")).json()}
    assert listed == {"default": 0, "status": 0, "in-use": 1, "spare": 0, "spare-2": 0}
    unused = [t["name"] for t in (await engine.http.get("/targets", params={"unused": "true"})).json()]
    assert unused == ["default", "status", "spare", "spare-2"]

    assert (await engine.http.delete("/targets")).status_code == 422  # unused=true must be said
    assert (await engine.http.delete("/targets", params={"unused": "false"})).status_code == 422
    deleted = (await engine.http.delete("/targets", params={"unused": "true"})).json()
    assert deleted == {"deleted": 2, "names": ["spare", "spare-2"]}  # configured ones stay
    assert [t["name"] for t in (await engine.http.get("/targets")).json()] == ["default", "status", "in-use"]
    assert (await engine.http.delete("/targets/in-use")).status_code == 409


async def test_secrets_stay_out_of_the_logs_even_at_debug(engine, caplog, monkeypatch):
    from task_scheduler import logs

    for name in logs.QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    logs.configure("DEBUG")
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-for-the-logs"
    body = {"name": "keyed", "config": {"kind": "http", "base_url": "http://127.0.0.1:9", "token": secret}}
    assert (await engine.http.post("/targets", json=body)).status_code == 201
    assert (await engine.http.get("/targets/keyed")).status_code == 200
    assert caplog.records and secret not in caplog.text
