"""``file`` tasks end to end: real directories, a real HTTP server on loopback, each database.

Each test drives the dispatcher pass by pass under a fake clock, then reads the run and
the event published on the rule's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.events import EventType
from task_scheduler.testing.service_process import free_port
from tests.integration.conftest import Service

HOURLY = {"kind": "interval", "every": 1, "unit": "hours"}


class Files(Service):
    async def runs(self, rule: dict[str, Any]) -> list[dict[str, Any]]:
        page = (await self.http.get("/runs", params={"rule_id": rule["id"]})).json()
        return sorted(page["items"], key=lambda run: run["started_at"])

    async def create(self, task: dict[str, Any], **overrides: Any) -> httpx.Response:
        body = {"name": "files", "schedule": HOURLY, "task": {"kind": "file", **task}, **overrides}
        return await self.http.post("/rules", json=body)

    async def rule(self, task: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        response = await self.create(task, **overrides)
        assert response.status_code == 201, response.text
        return response.json()

    async def next_hour(self) -> None:
        self.clock.advance(seconds=3600)
        await self.dispatch()


@pytest.fixture
def dirs(tmp_path):
    for name in ("inbox", "archive", "outside"):
        (tmp_path / name).mkdir()
    (tmp_path / "inbox" / "report.csv").write_text("a,b\n1,2\n")
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return tmp_path


@pytest.fixture
async def files(db_url, clock, dirs) -> AsyncIterator[Files]:
    archive = {"kind": "directory", "path": str(dirs / "archive"), "writable": True}
    settings = build_settings(
        {
            "db_url": db_url,
            "targets": {
                "inbox": {"kind": "directory", "path": str(dirs / "inbox"), "max_file_bytes": 64},
                "archive": archive,
                "small": {
                    "kind": "directory",
                    "path": str(dirs / "archive"),
                    "writable": True,
                    "max_file_bytes": 4,
                },
                "fleet": {"kind": "http", "base_url": "http://127.0.0.1:9"},
            },
        },
        environ={},
    )
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            yield Files(app=app, clock=clock, http=http)


@contextlib.asynccontextmanager
async def web_server(handler) -> AsyncIterator[str]:
    """A real HTTP server on loopback answering every request with ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_file_copied_hourly_keeps_each_copy_and_reports_on_the_channel(files, dirs):
    seen: list[Any] = []
    files.app.state.services.events.stream.subscribe(seen.append)
    rule = await files.rule(
        {
            "op": "copy",
            "source": {"target": "inbox", "path": "report.csv"},
            "destination": {
                "target": "archive",
                "path": "{scheduled_at:%Y/%m}/report-{scheduled_at:%H%M}.csv",
            },
        },
        channel="reports",
    )
    assert rule["task"]["target"] == "archive"
    await files.next_hour()
    (dirs / "inbox" / "report.csv").write_text("a,b\n3,4\n")
    await files.next_hour()

    copies = dirs / "archive" / "2026" / "01"
    assert sorted(p.name for p in copies.iterdir()) == ["report-1300.csv", "report-1400.csv"]
    assert (copies / "report-1400.csv").read_text() == "a,b\n3,4\n"
    first, second = await files.runs(rule)
    assert (first["outcome"], second["outcome"]) == ("succeeded", "succeeded")
    assert first["response"] == {
        "op": "copy",
        "source": "inbox:report.csv",
        "destination": "archive:2026/01/report-1300.csv",
        "size": 8,
        "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
    }
    finished = [e for e in seen if e.type is EventType.run_finished and e.channel == "reports"]
    assert [e.data["response"]["destination"] for e in finished] == [
        "archive:2026/01/report-1300.csv",
        "archive:2026/01/report-1400.csv",
    ]


async def test_both_directories_of_a_copy_count_as_used(files):
    await files.rule(
        {
            "op": "copy",
            "source": {"target": "inbox", "path": "a"},
            "destination": {"target": "archive", "path": "a"},
        }
    )
    used = {t["name"]: t["used_by"] for t in (await files.http.get("/targets")).json()}
    assert used == {"inbox": 1, "archive": 1, "small": 0, "fleet": 0}
    within = {"target": "archive", "path": "b"}
    await files.rule({"op": "copy", "source": within, "destination": within}, name="within one")
    used = {t["name"]: t["used_by"] for t in (await files.http.get("/targets")).json()}
    assert used == {"inbox": 1, "archive": 2, "small": 0, "fleet": 0}  # a rule counts once


async def test_rules_that_would_leave_their_directories_are_refused_with_the_field(files):
    async def refused(task: dict[str, Any]) -> list[list[Any]]:
        response = await files.create(task)
        assert response.status_code == 422, response.text
        return [item["loc"][1:] for item in response.json()["detail"]]  # after "body"

    read_only = {"op": "write", "content": "x", "destination": {"target": "inbox", "path": "x"}}
    assert ["task", "destination", "target"] in await refused(read_only)
    too_long = {"op": "write", "content": "x", "destination": {"target": "archive", "path": "x"}}
    small = {**too_long, "content": "12345", "destination": {"target": "small", "path": "x"}}
    assert ["task", "content"] in await refused(small)
    no_source = {**too_long, "op": "copy", "source": {"target": "nowhere", "path": "a"}}
    del no_source["content"]
    assert ["task", "source", "target"] in await refused(no_source)
    wrong_kind = {**no_source, "source": {"target": "fleet", "path": "a"}}
    assert ["task", "source", "target"] in await refused(wrong_kind)
    for path in ("../outside/secret.txt", "/etc/passwd", "a/../../b", "{scheduled_at.year}"):
        locs = await refused({"op": "read", "source": {"target": "inbox", "path": path}})
        assert ["task", "file", "source", "path"] in locs, locs
    # A NUL is refused in any request, before the kind's model: at its place in the body.
    locs = await refused({"op": "read", "source": {"target": "inbox", "path": "a\x00"}})
    assert locs == [["task", "source", "path"]]


async def test_links_swapped_in_after_the_rule_was_saved_and_big_files_fail_at_run_time(files, dirs):
    rule = await files.rule({"op": "read", "source": {"target": "inbox", "path": "report.csv"}})
    (dirs / "inbox" / "report.csv").unlink()
    (dirs / "inbox" / "report.csv").symlink_to(dirs / "outside" / "secret.txt")
    await files.next_hour()
    (dirs / "inbox" / "report.csv").unlink()
    (dirs / "inbox" / "report.csv").write_text("x" * 65)  # over the inbox's 64 bytes
    await files.next_hour()

    linked, big = await files.runs(rule)
    assert linked["outcome"] == "rejected" and "symbolic link" in linked["error"]
    assert "secret" not in str(linked["response"])
    assert big["outcome"] == "failed" and "more than the limit of 64" in big["error"]


async def test_urls_are_read_and_written_through_the_allowlist(files, dirs):
    received: list[tuple[str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.Response(text="remote,content")
        received.append((request.method, await request.read()))
        return web.Response(status=201)

    async with web_server(handler) as url:
        read = await files.rule({"op": "read", "source": {"url": f"{url}/r.csv"}, "keep": "content"})
        write = await files.rule(
            {"op": "write", "content": "hello", "destination": {"url": f"{url}/in", "method": "POST"}},
            name="post",
        )
        download = await files.rule(
            {
                "op": "copy",
                "source": {"url": f"{url}/r.csv"},
                "destination": {"target": "archive", "path": "r-{scheduled_at:%H}.csv"},
            },
            name="download",
        )
        outside = await files.create(
            {"op": "read", "source": {"url": "http://10.1.2.3/r.csv"}}, name="outside"
        )
        await files.next_hour()

    [read_run] = await files.runs(read)
    assert read_run["outcome"] == "succeeded" and read_run["response"]["content"] == "remote,content"
    [write_run] = await files.runs(write)
    assert write_run["response"]["status"] == 201 and received == [("POST", b"hello")]
    assert (await files.runs(download))[0]["outcome"] == "succeeded"
    assert (dirs / "archive" / "r-13.csv").read_text() == "remote,content"
    assert outside.status_code == 422
    [problem] = outside.json()["detail"]
    assert problem["loc"] == ["body", "task", "source", "url"]
    assert problem["msg"] == "10.1.2.3 is not in outbound_allowlist"


async def test_a_download_is_bounded_and_a_slow_one_times_out(files, dirs):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.Response(body=b"y" * 100)  # more than the inbox's 64 bytes

    async with web_server(handler) as url:
        big = await files.rule(
            {
                "op": "copy",
                "source": {"url": f"{url}/big"},
                "destination": {"target": "archive", "path": "big"},
            }
        )
        slow = await files.rule(
            {"op": "read", "source": {"url": f"{url}/slow"}},
            name="slow",
            policy={"max_execution_time_s": 0.2, "max_attempts": 1},
        )
        await files.next_hour()

    # The archive allows 10 MiB, so the 100 bytes arrive; the inbox bounds nothing here.
    assert (await files.runs(big))[0]["outcome"] == "succeeded"
    [timed_out] = await files.runs(slow)
    assert timed_out["outcome"] == "timeout" and "max_execution_time_s" in timed_out["error"]


async def test_an_end_that_cannot_be_reached_does_not_put_the_tasks_own_directory_in_outage(files, dirs):
    def once(seconds: float) -> dict[str, Any]:
        return {"kind": "once", "at": (files.clock.now() + timedelta(seconds=seconds)).isoformat()}

    dead = f"http://127.0.0.1:{free_port()}/report.csv"
    copy = {"op": "copy", "source": {"url": dead}, "destination": {"target": "archive", "path": "a.csv"}}
    await files.rule(copy, name="from a dead host", schedule=once(60), policy={"max_attempts": 1})
    write = {"op": "write", "content": "ok", "destination": {"target": "archive", "path": "b.csv"}}
    await files.rule(write, name="write", schedule=once(60.5))  # before a probe would be due

    files.clock.advance(seconds=60)
    await files.dispatch()
    files.clock.advance(seconds=0.5)
    await files.dispatch()
    assert (dirs / "archive" / "b.csv").read_text() == "ok"  # not held back as if archive were down
