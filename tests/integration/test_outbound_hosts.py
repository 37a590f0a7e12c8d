"""Outbound hosts in every form people write them, on each database.

With ``outbound_allowlist: ["127.0.0.1"]``, 127.0.0.2 is outside, however it is written
(fullwidth or circled digits, ideographic full stops, hex, one number): every way of
saving a URL or a target answers 422 naming the field, and what is stored already (saved
under a wider list) never reaches a real listener on 127.0.0.2, while 127.0.0.1, written
either way, still does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from tests.integration.conftest import Service

EVERY_10_S = {"kind": "interval", "every": 10, "unit": "seconds"}
FULLWIDTH_127_0_0_2 = "\uff11\uff12\uff17.\uff10.\uff10.\uff12"
FULLWIDTH_127_0_0_1 = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"
OUTSIDE = [
    FULLWIDTH_127_0_0_2,
    "\u2460\u2461\u2466.\u24ea.\u24ea.\u2461",  # circled digits
    "127\u30020\u30020\u30022",  # ideographic full stops
    "0x7f.2",
    "2130706434",
    "127.2",
    "[::ffff:127.0.0.2]",
    "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",  # 169.254.169.254
]
UNREADABLE = ["e\u200bvil.example", "foo.123", "a..b.example", "xn--99999999999.example"]


@contextlib.asynccontextmanager
async def running(db_url: str, clock: Any, allowlist: list[str]) -> AsyncIterator[Service]:
    settings = build_settings({"db_url": db_url, "outbound_allowlist": allowlist}, environ={})
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            yield Service(app=app, clock=clock, http=http)


@pytest.fixture
async def guarded(db_url, clock) -> AsyncIterator[Service]:
    async with running(db_url, clock, ["127.0.0.1"]) as service:
        yield service


def rule(task: dict[str, Any], name: str = "r") -> dict[str, Any]:
    return {"name": name, "schedule": EVERY_10_S, "task": task}


def http_task(host: str) -> dict[str, Any]:
    return {"kind": "http", "url": f"http://{host}:8080/hook"}


def refused(response: httpx.Response, loc: list[Any], host: str) -> bool:
    """Whether the answer is a 422 naming ``loc`` and saying the host is not allowed."""
    assert response.status_code == 422, (host, response.status_code, response.text)
    problems = response.json()["detail"]
    return any(p["loc"] == loc and "outbound_allowlist" in p["msg"] for p in problems)


async def test_a_rule_calling_an_address_outside_is_refused_when_saved(guarded):
    http = guarded.http
    kept = (await http.post("/rules", json=rule(http_task("127.0.0.1"), "kept"))).json()
    for host in OUTSIDE:
        url = ["body", "task", "url"]
        assert refused(await http.post("/rules", json=rule(http_task(host))), url, host)
        assert refused(await http.put(f"/rules/{kept['id']}", json=rule(http_task(host))), url, host)
        batch = [rule(http_task("127.0.0.1"), "fine"), rule(http_task(host), "bad")]
        assert refused(await http.post("/rules/batch", json=batch), ["body", 1, "task", "url"], host)
        read = {"kind": "file", "op": "read", "source": {"url": f"http://{host}/r.csv"}}
        assert refused(await http.post("/rules", json=rule(read)), ["body", "task", "source", "url"], host)
        write = {"kind": "file", "op": "write", "content": "x", "destination": {"url": f"http://{host}/w"}}
        assert refused(
            await http.post("/rules", json=rule(write)), ["body", "task", "destination", "url"], host
        )
        timer = {"seconds": 5, "url": f"http://{host}/ring"}
        assert refused(await http.post("/timers", json=timer), ["body", "url"], host)
    names = [r["name"] for r in (await http.get("/rules")).json()["items"]]
    assert names == ["kept"]
    assert (await http.get(f"/rules/{kept['id']}")).json()["task"]["url"] == "http://127.0.0.1:8080/hook"
    assert (await http.get("/tasks", params={"kind": "http"})).json()["items"][0]["rule_id"] == kept["id"]


def targets(host: str) -> dict[str, tuple[dict[str, Any], str]]:
    """A target of each kind connecting to ``host``, and the field naming it."""
    return {
        "hook": ({"kind": "http", "base_url": f"http://{host}:8080", "token": "t0ken"}, "base_url"),
        "fleet": ({"kind": "rmf_http", "base_url": f"http://{host}:8000", "token": "t0ken"}, "base_url"),
        "bridge": ({"kind": "rmf_ws", "url": f"ws://{host}:8000/ws"}, "url"),
        "db": (
            {
                "kind": "database",
                "url": f"postgres://reporter@{host}:5432/reports",
                "queries": {"n": {"sql": "SELECT 1", "mode": "read"}},
            },
            "url",
        ),
    }


async def test_a_target_connecting_to_an_address_outside_is_refused_when_saved(guarded):
    http = guarded.http
    for name, (config, _) in targets("127.0.0.1").items():
        assert (await http.post("/targets", json={"name": name, "config": config})).status_code == 201
    for host in OUTSIDE:
        for name, (config, where) in targets(host).items():
            made = await http.post("/targets", json={"name": f"new-{name}", "config": config})
            assert refused(made, ["body", "config", where], host)
            assert refused(await http.put(f"/targets/{name}", json=config), ["body", where], host)
    listed = {t["name"]: t["config"] for t in (await http.get("/targets")).json()}
    assert sorted(listed) == ["bridge", "db", "default", "fleet", "hook"]  # default: configured
    assert listed["hook"]["base_url"] == "http://127.0.0.1:8080"


async def test_a_host_that_cannot_be_read_is_refused_naming_the_field(guarded):
    http = guarded.http
    for host in UNREADABLE:
        for response, field_name in (
            (await http.post("/rules", json=rule(http_task(host))), "url"),
            (await http.post("/timers", json={"seconds": 5, "url": f"http://{host}/"}), "url"),
            (
                await http.post("/targets", json={"name": "t", "config": targets(host)["fleet"][0]}),
                "base_url",
            ),
            (await http.post("/targets", json={"name": "t", "config": targets(host)["db"][0]}), "url"),
        ):
            assert response.status_code == 422, (host, response.text)
            [problem] = response.json()["detail"]
            assert problem["loc"][-1] == field_name and "the host" in problem["msg"], problem


async def test_an_occurrence_cannot_be_given_a_url_of_its_own(guarded):
    http = guarded.http
    timer = (await http.post("/timers", json={"seconds": 60, "url": "http://127.0.0.1:8080/ring"})).json()
    own = {"category": "clean", "description": {}, "url": f"http://{FULLWIDTH_127_0_0_2}/"}
    answer = await http.patch(f"/tasks/{timer['id']}", json={"request": own})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][:2] == ["body", "request"]
    answer = await http.patch(
        f"/tasks/{timer['id']}", json={"request": {"category": "clean", "description": {"zone": "lobby"}}}
    )
    assert answer.status_code == 422 and "only rmf tasks" in answer.text
    assert (await http.get(f"/timers/{timer['id']}")).json()["url"] == "http://127.0.0.1:8080/ring"


async def test_the_allowed_address_is_accepted_however_it_is_written(guarded):
    http = guarded.http
    for index, host in enumerate(["127.0.0.1", FULLWIDTH_127_0_0_1, "0x7f.1", "127.1", "[::ffff:127.0.0.1]"]):
        made = await http.post("/rules", json=rule(http_task(host), f"r{index}"))
        assert made.status_code == 201, (host, made.text)
        assert (await http.post("/timers", json={"seconds": 5, "url": f"http://{host}/"})).status_code == 201


# -- what is stored already is never dialled -------------------------------------------------


@dataclass
class Listener:
    """A real HTTP (and websocket handshake) server; ``calls`` holds each request's path."""

    url: str = ""
    calls: list[tuple[str, str | None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening(address: str) -> AsyncIterator[Listener]:
    state = Listener()

    async def record(request: web.Request) -> web.Response:
        state.calls.append((request.path, request.headers.get("Authorization")))
        return web.Response(text="here")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"{address}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def accepting(address: str) -> AsyncIterator[tuple[int, list[int]]]:
    """A bare TCP server, where a database would listen: its port, and one entry a connection."""
    accepted: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, address, 0)
    async with server:
        yield server.sockets[0].getsockname()[1], accepted


def stored_targets(host: str, port: str, database_port: int) -> dict[str, dict[str, Any]]:
    """A target of each kind that connects to ``host``, secrets and all."""
    select = {"n": {"sql": "SELECT 1", "mode": "read"}}
    return {
        "hook": {"kind": "http", "base_url": f"http://{host}:{port}", "token": "t0ken"},
        "fleet": {"kind": "rmf_http", "base_url": f"http://{host}:{port}", "token": "t0ken"},
        "bridge": {"kind": "rmf_ws", "url": f"ws://{host}:{port}/ws", "token": "t0ken"},
        "pg": {"kind": "database", "url": f"postgres://u@{host}:{database_port}/x", "queries": select},
        "maria": {"kind": "database", "url": f"mysql://u@{host}:{database_port}/x", "queries": select},
    }


CLEAN_LOBBY = {"category": "clean", "description": {"zone": "lobby"}}
THROUGH_TARGETS = [
    {"kind": "http", "target": "hook", "path": "/target"},
    {"kind": "rmf", "target": "fleet", "request": CLEAN_LOBBY},
    {"kind": "rmf", "target": "bridge", "request": CLEAN_LOBBY},
    {"kind": "sql", "target": "pg", "query": "n"},
    {"kind": "sql", "target": "maria", "query": "n"},
]


async def test_nothing_stored_reaches_an_address_outside_however_it_is_written(db_url, clock):
    async with (
        listening("127.0.0.2") as outside,
        listening("127.0.0.1") as inside,
        accepting("127.0.0.2") as (database_port, database_calls),
    ):
        port, allowed_port = outside.url.rsplit(":", 1)[1], inside.url.rsplit(":", 1)[1]
        hosts = sorted({f"{h}:{port}" for h in OUTSIDE[:-1]} | {f"127.0.0.2:{port}"})
        # Saved while the list was wider: the narrower one applies from the next start.
        async with running(db_url, clock, ["127.0.0.0/8"]) as wide:
            http = wide.http
            for index, host in enumerate(hosts):
                base = f"http://{host}"
                file_task = {"kind": "file", "op": "read", "source": {"url": f"{base}/file"}}
                for made in (
                    await http.post(
                        "/rules", json=rule({"kind": "http", "url": f"{base}/task"}, f"t{index}")
                    ),
                    await http.post("/rules", json=rule(file_task, f"f{index}")),
                    await http.post("/timers", json={"seconds": 10, "url": f"{base}/timer"}),
                ):
                    assert made.status_code == 201, made.text
            for name, config in stored_targets(FULLWIDTH_127_0_0_2, port, database_port).items():
                assert (await http.post("/targets", json={"name": name, "config": config})).status_code == 201
            for task in THROUGH_TARGETS:
                made = await http.post("/rules", json=rule(task, task["target"]))
                assert made.status_code == 201, made.text
            for name, host in (("allowed", "127.0.0.1"), ("allowed-fullwidth", FULLWIDTH_127_0_0_1)):
                task = {"kind": "http", "url": f"http://{host}:{allowed_port}/{name}"}
                assert (await http.post("/rules", json=rule(task, name))).status_code == 201
        async with running(db_url, clock, ["127.0.0.1"]) as narrow:
            narrow.clock.advance(seconds=10)
            await narrow.dispatch()
            history = (await narrow.http.get("/runs", params={"limit": 500})).json()["items"]
    assert outside.calls == [] and database_calls == []
    assert sorted(path for path, _ in inside.calls) == ["/allowed", "/allowed-fullwidth"]
    assert len(history) == 3 * len(hosts) + len(THROUGH_TARGETS) + 2, history
    assert len([run for run in history if run["outcome"] == "succeeded"]) == 2, history
    refusals = [run for run in history if run["outcome"] != "succeeded"]
    assert {run["outcome"] for run in refusals} == {"rejected"}, refusals
    assert all("not in outbound_allowlist" in run["error"] for run in refusals), refusals


async def test_a_configured_target_outside_the_list_is_named_at_start(db_url, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="task_scheduler.services.targets"):
        async with running(db_url, clock, ["10.0.0.0/8"]):
            pass
    assert "target 'default' (base_url): 127.0.0.1 is not in outbound_allowlist" in caplog.text
