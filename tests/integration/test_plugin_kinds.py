"""A site's own task kind, installed as a package with entry points, works like a built-in one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings
from task_scheduler.kinds.registry import PluginError
from tests.integration.conftest import T0

PLUGIN = """
from typing import Literal

from pydantic import BaseModel, ConfigDict

from task_scheduler.kinds.base import TargetKind, TaskKind
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome


class NoteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["note"]
    target: str
    text: str


class NoteKind(TaskKind):
    name = "note"
    spec = NoteTask
    target_kinds = frozenset({"notebook"})

    def check(self, task):
        return [] if task.text.strip() else [(("text",), "write something")]

    def build(self, document, occurrence):
        return {"line": f"{occurrence.task_id}: {document['text']}"}


class Notebook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["notebook"]
    path: str


class NotebookTransport:
    supports_lookup = False
    capacity = 1

    def __init__(self, config, context):
        self.path = config.path

    async def submit(self, message):
        if message["line"].endswith("too deep"):  # a bug, as a parser hitting its recursion limit
            raise RecursionError("maximum recursion depth exceeded")
        with open(self.path, "a") as notes:
            notes.write(message["line"] + "\\n")
        return Delivery(Outcome.SUCCEEDED, response={"written": message["line"]})

    async def find(self, label):
        raise LookupFailed("a notebook keeps no index")

    async def aclose(self):
        pass


NOTEBOOK = TargetKind("notebook", Notebook, NotebookTransport)
"""


def install(site: Path, entry_points: str) -> None:
    """A package as pip would leave it: the module and its dist-info with entry points."""
    (site / "site_kinds.py").write_text(PLUGIN)
    info = site / "site_kinds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: site-kinds\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def install_note_kinds(tmp_path, monkeypatch) -> None:
    """The ``note`` task kind and ``notebook`` target kind, installed as a site's package."""
    site = tmp_path / "site"
    site.mkdir()
    install(
        site,
        """
        [rmf_task_scheduler.task_kinds]
        note = site_kinds:NoteKind
        [rmf_task_scheduler.target_kinds]
        notebook = site_kinds:NOTEBOOK
        """,
    )
    monkeypatch.syspath_prepend(str(site))


async def test_a_plugin_kind_and_target_validate_dispatch_and_show_like_built_in_ones(tmp_path, monkeypatch):
    install_note_kinds(tmp_path, monkeypatch)
    notes = tmp_path / "notes.txt"
    settings = build_settings(
        {
            "db_url": f"sqlite://{tmp_path / 'db.sqlite3'}",
            "targets": {"journal": {"kind": "notebook", "path": str(notes)}},
        },
        environ={},
    )
    clock = FakeClock(T0)
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            hourly = {"kind": "interval", "every": 1, "unit": "hours"}
            bad = {
                "name": "n",
                "schedule": hourly,
                "task": {"kind": "note", "target": "journal", "text": " "},
            }
            refused = (await http.post("/rules", json=bad)).json()["detail"]
            assert refused == [
                {"loc": ["body", "task", "text"], "msg": "write something", "type": "value_error"}
            ]
            extra = {
                **bad,
                "task": {"kind": "note", "target": "journal", "text": "hi", "sql": "DROP TABLE x"},
            }
            assert (await http.post("/rules", json=extra)).status_code == 422

            good = {**bad, "task": {"kind": "note", "target": "journal", "text": "water the plants"}}
            rule = (await http.post("/rules", json=good)).json()
            clock.advance(hours=1)
            assert await app.state.services.dispatcher.run_pass() == 1

            made = await http.post(
                "/targets", json={"name": "diary", "config": {"kind": "notebook", "path": "/x"}}
            )
            assert made.status_code == 201 and made.json()["config"]["kind"] == "notebook"
            wrong = {"name": "diary2", "config": {"kind": "notebook", "path": "/x", "colour": "red"}}
            assert (await http.post("/targets", json=wrong)).status_code == 422
            [run] = (await http.get("/runs")).json()["items"]
    assert notes.read_text() == f"{rule['id']}-20260105T130000Z: water the plants\n"
    assert run["outcome"] == "succeeded" and run["response"]["written"].endswith("water the plants")


async def test_a_transport_that_raises_still_ends_in_a_recorded_run(tmp_path, monkeypatch):
    install_note_kinds(tmp_path, monkeypatch)
    settings = build_settings(
        {
            "db_url": f"sqlite://{tmp_path / 'db.sqlite3'}",
            "targets": {"journal": {"kind": "notebook", "path": str(tmp_path / "notes.txt")}},
        },
        environ={},
    )
    clock = FakeClock(T0)
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            task = {"kind": "note", "target": "journal", "text": "too deep"}
            hourly = {"kind": "interval", "every": 1, "unit": "hours"}
            await http.post("/rules", json={"name": "n", "schedule": hourly, "task": task})
            clock.advance(hours=1)
            assert await app.state.services.dispatcher.run_pass() == 1
            [run] = (await http.get("/runs")).json()["items"]
            failed = (await http.get(f"/tasks/{run['task_id']}")).json()
    # The call may have been made: ambiguous, and a notebook cannot be asked, so no retry.
    assert run["outcome"] == "failed"
    assert run["error"] == "the transport failed: RecursionError('maximum recursion depth exceeded')"
    assert failed["status"] == "failed"


def test_a_plugin_that_cannot_be_loaded_stops_start_up_naming_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "[rmf_task_scheduler.task_kinds]\nbroken = site_kinds:NoSuchKind\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match="entry point 'broken' \\(site_kinds:NoSuchKind\\)"):
        get_app(build_settings({}, environ={}), run_background=False)
