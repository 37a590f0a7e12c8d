"""Every example in the user docs runs, so the docs cannot drift from the service.

The blocks come from README.md and docs/**/*.md (not docs/reference/, which is generated).
``sh`` blocks run command by command against the service in-process on SQLite, with the
fake clock at T0 (the examples' dates are 2026) and the fake fleet on a real socket as the
``default`` target; an answer shown after a command (``# {...}`` or a ``$`` transcript) is
checked loosely: the keys shown are there and concrete values are equal, ``...`` and ``…``
elide. ``python`` blocks are configurations (checked by ``build_settings``) or the plug-in
kind (installed and dispatched); ``json`` blocks are targets or tasks (checked by the API).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings
from task_scheduler.testing.fake_fleet import running_fake_fleet
from tests.databases import POSTGRES_URL, _parts, _unavailable
from tests.integration.conftest import T0
from tests.keys import rsa_pair

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "localhost:8010"
ADMIN_PASSWORD = "admin password 1"
JWT_SECRET = "a-doc-example-secret-that-is-long-enough-0123"
REPORT_CSV = "a,b\n1,2\n"  # what the file-copy example copies (its size and hash are shown)
PURGED = 1284  # old rows in the SQL example's audit_log

# Commands the docs show that this test does not run, and why.
NOT_RUN = {
    "npm start": "starts the service as a process: what the e2e suite does",
    "npm test": "runs the whole test suite, this test included",
    "python -m task_scheduler.testing.fake_fleet": "the test runs the same fake fleet on a free port",
    "task_scheduler create-admin --username admin": "asks on a terminal; the piped form beside it runs",
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'": "prints "
    "a new random key",
    "task_scheduler rotate-secrets": "test_target_secrets.py runs it, with keys it rotates",
    "pip install": "installs a benchmark's peers from the package index",
    "python -m bench.throughput": "a benchmark: minutes of load, run by hand for its figures",
    "python -m bench.listing": "a benchmark: minutes of load, run by hand for its figures",
    "python -m bench.hostile": "a benchmark: minutes of load, run by hand for its figures",
}

# Blocks of these languages are not run, and why.
NOT_RUN_LANGUAGES = {
    "text": "a log line, a diagram or a comment laid out by hand: nothing to run",
    "nginx": "a reverse proxy's configuration: no nginx here; the routes it forwards are "
    "tested in tests/integration/test_scheduled_tasks.py",
    "js": "a browser's code; the first message it sends to /events is tested in "
    "tests/integration/test_authorization.py and tests/e2e/test_secrets_in_logs.py",
}

# What the prose says happens before a command ("after the next hour", "the next
# morning"): the fake clock moves on this much, then the expander and dispatcher run.
WAIT = {
    "/runs?rule_id=1&limit=1": timedelta(hours=1),
    "/runs?rule_id=1'": timedelta(hours=13),
    "/runs?rule_id=1&limit=3": timedelta(seconds=10),
    "/_fake/received": timedelta(seconds=10),
    "/tasks/$TIMER/runs": timedelta(minutes=5),
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page."""

    path: Path
    line: int  # of the block's first line of code
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_pages() -> list[Path]:
    docs = ROOT / "docs"
    pages = [p for p in sorted(docs.rglob("*.md")) if p.relative_to(docs).parts[0] != "reference"]
    return [ROOT / "README.md", *pages]


def code_blocks(path: Path) -> list[Block]:
    found, lang, start, lines = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if lang is None and fence:
            lang, start, lines = fence.group(1), number + 1, []
        elif lang is not None and line.strip() == "```":
            found.append(Block(path, start, lang, "\n".join(lines) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(line)
    return found


BLOCKS = [block for page in doc_pages() for block in code_blocks(page) if block.lang]


# -- reading a shell block -------------------------------------------------------------


@dataclass
class Command:
    line: int
    text: str
    output: str = ""  # the answer the docs show, if any
    heredoc: str | None = None


def _unclosed(text: str) -> bool:
    """Whether a shell command continues on the next line (open quote or trailing \\)."""
    if text.rstrip().endswith("\\"):
        return True
    try:
        shlex.split(text, comments=False)
    except ValueError:
        return True
    return False


def _depth(text: str) -> int:
    """Open brackets of a JSON-ish text, strings skipped."""
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            escaped, quoted = (not escaped and char == "\\"), quoted and (escaped or char != '"')
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return depth


def split_comment(text: str) -> tuple[str, str]:
    """A command and its trailing ``# comment`` (a # outside quotes after a blank)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text, ""


def commands(block: Block) -> list[Command]:
    lines = block.text.splitlines()
    transcript = any(line.startswith("$ ") for line in lines)
    found: list[Command] = []
    i = 0
    while i < len(lines):
        line, number = lines[i], block.line + i
        i += 1
        if not line.strip():
            continue
        if transcript and not line.startswith("$ "):
            found[-1].output += line + "\n"
            continue
        if line.startswith("#"):
            comment = line[1:].strip()
            if found and comment[:1] in "{[" and not found[-1].output:
                output = comment
                while _depth(output) > 0 and i < len(lines) and lines[i].startswith("#"):
                    output += " " + lines[i][1:].strip()
                    i += 1
                found[-1].output = output
            continue
        text = line[2:] if transcript else line
        while _unclosed(text) and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        text, comment = split_comment(text)
        command = Command(number, text, output=comment if comment[:1] in "{[" else "")
        heredoc = re.search(r"<<'?(\w+)'?$", text)
        if heredoc:
            end = lines.index(heredoc.group(1), i)
            command.heredoc = "\n".join(lines[i:end]) + "\n"
            i = end + 1
        found.append(command)
    return found


# -- comparing a shown answer with the real one -----------------------------------------


def shown_json(text: str) -> Any:
    """The answer shown in the docs as JSON: bare ``...``/``…`` items dropped, an elided
    value kept as the string ``"..."`` (any value)."""
    out, quoted, escaped, i = [], False, False, 0
    while i < len(text):
        char = text[i]
        if quoted:
            escaped, quoted = (not escaped and char == "\\"), quoted and (escaped or char != '"')
        elif char == '"':
            quoted = True
        elif text.startswith("...", i) or char == "…":
            i += 3 if char == "." else 1
            if "".join(out).rstrip().endswith(":"):
                out.append('"..."')  # an elided value: any
            continue
        out.append(char)
        i += 1
    tidy = re.sub(r",(\s*[}\]])", r"\1", "".join(out))
    tidy = re.sub(r"([{\[]\s*),", r"\1", tidy)
    tidy = re.sub(r",(\s*),", r",\1", tidy)
    return json.loads(tidy)


def mismatch(shown: Any, real: Any, at: str = "") -> str | None:
    """Where a real answer differs from what the docs show (None if it does not)."""
    if isinstance(shown, str) and shown in ("...", "…"):
        return None
    if isinstance(shown, str) and shown.endswith(("…", "...")):
        prefix = shown.rstrip(".…")
        ok = isinstance(real, str) and real.startswith(prefix)
        return None if ok else f"{at}: {real!r} does not start with {prefix!r}"
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return f"{at}: {real!r} is not an object"
        for key, value in shown.items():
            if key not in real:
                return f"{at}: no key {key!r} in {sorted(real)}"
            problem = mismatch(value, real[key], f"{at}.{key}")
            if problem:
                return problem
        return None
    if isinstance(shown, list):
        if not isinstance(real, list) or len(real) < len(shown):
            return f"{at}: {real!r} has fewer items than {shown!r}"
        for index, value in enumerate(shown):
            problem = mismatch(value, real[index], f"{at}[{index}]")
            if problem:
                return problem
        return None
    return None if shown == real else f"{at}: {real!r} where the docs show {shown!r}"


# -- the world the examples run in -------------------------------------------------------


async def _web_stand_in(request: web.Request) -> web.Response:
    """The web service the examples call at 127.0.0.1:9000."""
    if request.path == "/status":
        return web.Response(text="OK version=1.2")
    return web.Response(status=204)


@contextlib.asynccontextmanager
async def web_stand_in() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _web_stand_in)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def scratch_reports_database() -> str:
    """The SQL example's database, on the tests' PostgreSQL: old audit rows to purge."""
    import asyncpg

    user, _, host, port, _ = _parts(POSTGRES_URL)
    name = _parts(POSTGRES_URL)[4] + "_reports"
    connect = {"user": user, "host": host, "port": port, "timeout": 5}
    try:
        admin = await asyncpg.connect(database="postgres", **connect)
    except OSError as exc:
        _unavailable("postgres", exc)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(database=name, **connect)
    try:
        await conn.execute("DROP TABLE IF EXISTS audit_log, job_log")
        await conn.execute("CREATE TABLE audit_log (id serial PRIMARY KEY, created_at timestamptz)")
        await conn.execute("CREATE TABLE job_log (id serial PRIMARY KEY, job text, failed_at timestamptz)")
        await conn.execute(
            "INSERT INTO audit_log (created_at) SELECT now() - interval '40 days' "
            "FROM generate_series(1, $1)",
            PURGED,
        )
        await conn.execute("INSERT INTO audit_log (created_at) SELECT now() FROM generate_series(1, 5)")
    finally:
        await conn.close()
    return f"postgres://{user}@{host}:{port}/{name}"


@dataclass
class World:
    tmp: Path
    http: httpx.AsyncClient
    app: Any
    clock: FakeClock
    substitutions: dict[str, str]
    env: dict[str, str] = field(default_factory=lambda: {"ADMIN_PASSWORD": ADMIN_PASSWORD})
    watching: list[tuple[str, Command, list[dict[str, Any]]]] = field(default_factory=list)

    def watch(self, url: str, command: Command, where: str) -> None:
        """``websocat`` on /events: the stream's events, by channel, from now to the block's end."""
        query = urlsplit(url).query
        channel = query.removeprefix("channel=") if query else None
        seen: list[dict[str, Any]] = []
        self.app.state.services.events.stream.subscribe(
            on_next=lambda event: seen.append(event.to_json()) if channel in (None, event.channel) else None
        )
        self.watching.append((where, command, seen))

    def check_watched(self) -> None:
        for where, command, seen in self.watching:
            shown = shown_json(self.substitute(command.output))
            problems = [mismatch(shown, event) for event in seen]
            assert None in problems, f"{where}: no event as shown among {seen}: {problems}"

    def substitute(self, text: str) -> str:
        for written, real in self.substitutions.items():
            text = text.replace(written, real)
        return text

    async def wait(self, delta: timedelta) -> None:
        self.clock.set(self.clock.now() + delta)
        await self.app.state.expander.run_pass()
        await self.app.state.services.dispatcher.run_pass()


@contextlib.asynccontextmanager
async def world(tmp: Path, block: Block) -> AsyncIterator[World]:
    """A service in-process on SQLite at T0, the fake fleet and a web service on free ports."""
    srv = tmp / "srv"
    for name in ("inbox", "archive", "reports"):
        (srv / name).mkdir(parents=True)
    (srv / "inbox" / "report.csv").write_text(REPORT_CSV)
    async with running_fake_fleet() as fleet, web_stand_in() as web_host:
        fleet_host = urlsplit(fleet.url).netloc
        substitutions = {
            "localhost:8011": fleet_host,
            "127.0.0.1:8011": fleet_host,
            "127.0.0.1:9000": web_host,
            "/srv/": f"{srv}/",
            "/tmp/scheduler.py": str(tmp / "scheduler.py"),
            '"password": "..."': f'"password": "{ADMIN_PASSWORD}"',
        }
        if "postgres://reporter@127.0.0.1:5432/reports" in block.text:
            substitutions["postgres://reporter@127.0.0.1:5432/reports"] = await scratch_reports_database()
        config: dict[str, Any] = {
            "db_url": f"sqlite://{tmp / 'scheduler.sqlite3'}",
            "targets": {
                "default": {"kind": "rmf_http", "base_url": fleet.url},
                "inbox": {"kind": "directory", "path": str(srv / "inbox")},
                "archive": {"kind": "directory", "path": str(srv / "archive"), "writable": True},
            },
        }
        if "/auth/" in block.text:
            config |= {
                "auth_enabled": True,
                "auth_jwt_secret": JWT_SECRET,
                "auth_admin_username": "admin",
                "auth_admin_password": ADMIN_PASSWORD,
            }
        clock = FakeClock(T0)
        app = get_app(build_settings(config, environ={}), clock=clock, run_background=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{SERVICE}") as http:
                yield World(tmp, http, app, clock, substitutions)


# -- running a shell command ---------------------------------------------------------------


async def curl(w: World, args: list[str]) -> httpx.Response:
    method, headers, body, url = None, {}, None, None
    args = iter(args[1:])
    for arg in args:
        if arg == "-s":
            continue
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            body = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"curl option {arg} is not understood by this test")
        else:
            url = arg if "://" in arg else f"http://{arg}"
    method = method or ("POST" if body is not None else "GET")
    parts = urlsplit(url)
    if parts.netloc == SERVICE:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return await w.http.request(method, target, headers=headers, content=body)
    async with httpx.AsyncClient() as outside:
        return await outside.request(method, url, headers=headers, content=body)


def jq(path: str, text: str) -> str:
    """``jq -r .a.b``, the only use the docs make of jq."""
    value = json.loads(text)
    for key in path.strip(".").split("."):
        value = value[key]
    return str(value)


def expand_vars(w: World, text: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: w.env.get(m.group(1), m.group(0)), text)


def not_run(text: str) -> str | None:
    """Why a command is not run (see NOT_RUN), read without its environment and ``&``."""
    words = re.sub(r"^(\w+=\S+ )+|^\.venv/bin/| &$", "", text)
    for start, reason in NOT_RUN.items():
        if words == start or words.startswith(start + " "):
            return reason
    return None


def cli(w: World, args: list[str], stdin: str) -> subprocess.CompletedProcess:
    config = w.tmp / "cli_config.py"
    config.write_text(
        f"config = {{'db_url': 'sqlite://{w.tmp / 'cli.sqlite3'}', 'auth_enabled': True, "
        f"'auth_jwt_secret': {JWT_SECRET!r}}}\n"
    )
    env = {**os.environ, "RMF_TASK_SCHEDULER_CONFIG": str(config)}
    args = [str(config) if arg == "/etc/rmf/task_scheduler.py" else arg for arg in args]
    return subprocess.run(
        [sys.executable, "-m", "task_scheduler", *args[1:]],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_command(w: World, command: Command, where: str) -> None:
    text = w.substitute(command.text)
    if command.heredoc is not None:
        write_config(Path(re.match(r"cat > (\S+) <<", text).group(1)), w.substitute(command.heredoc))
        return
    if not_run(text):
        return
    for key, delta in WAIT.items():
        if key in text:
            await w.wait(delta)
    assignment = re.fullmatch(r"(\w+)=\$\((.*)\)", text, re.S)
    if assignment:
        name, text = assignment.groups()
    text = text.replace("\\\n", " ")  # a backslash continues the line
    stages = [shlex.split(expand_vars(w, stage)) for stage in text.split(" | ")]
    program = stages[-1] if stages[-1][0] != "jq" else stages[0]
    if program[0] == "curl":
        response = await curl(w, program)
        shown = shown_json(w.substitute(command.output)) if command.output else None
        if isinstance(shown, dict) and "detail" in shown:
            assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text}"
        else:
            assert response.is_success, f"{where}: {response.status_code} {response.text}"
        if shown is not None:
            problem = mismatch(shown, response.json())
            assert problem is None, f"{where}: {problem}\nanswer: {response.text}"
        if assignment:
            assert stages[-1][:2] == ["jq", "-r"], f"{where}: only `jq -r .field` is understood"
            w.env[name] = jq(stages[-1][2], response.text)
    elif program[0] == "task_scheduler":
        printf = stages[0] if len(stages) == 2 else None
        assert printf is None or printf[:2] == ["printf", "%s\\n"], f"{where}: stdin is not understood"
        done = cli(w, program, printf[2] + "\n" if printf else "")
        assert done.returncode == 0, f"{where}: {done.stdout}{done.stderr}"
    elif program[0] == "websocat":
        w.watch(program[1], command, where)
    elif program[0] == "ls":
        listed = sorted(os.listdir(program[1]))
        assert listed == command.output.split(), f"{where}: {listed}"
    else:
        raise AssertionError(f"{where}: no way to run {text!r}: run it, or list it in NOT_RUN")


# -- python and json blocks ----------------------------------------------------------------


def validate(config: dict[str, Any]) -> None:
    """build_settings, with the admin's password from the environment, as the example says."""
    environ = (
        {"RMF_TASK_SCHEDULER_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD} if "auth_admin_username" in config else {}
    )
    build_settings(config, environ=environ)


def write_config(path: Path, text: str) -> None:
    """A configuration file written by a heredoc: written, then loaded and validated."""
    path.write_text(text)
    namespace: dict[str, Any] = {}
    exec(path.read_text(), namespace)
    validate(namespace["config"])


def check_config(w_tmp: Path, block: Block) -> None:
    pem = w_tmp / "keycloak.pem"
    pem.write_text(rsa_pair()[1])
    text = block.text.replace("/etc/rmf/keycloak.pem", str(pem)).replace(
        '"auth_jwt_secret": "..."', f'"auth_jwt_secret": "{JWT_SECRET}"'
    )
    if text.lstrip().startswith('"'):
        text = "config = {\n" + text + "}\n"  # a fragment of the config dict
    namespace: dict[str, Any] = {}
    exec(text, namespace)
    validate(namespace["config"])


async def check_plugin(tmp: Path, block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plug-in example, installed with the docs' entry points, takes a rule and runs it."""
    setup = next(b for b in BLOCKS if b.path == block.path and "entry_points = {" in b.text)
    namespace: dict[str, Any] = {}
    exec(setup.text, namespace)
    site = tmp / "site"
    (site / "my_site").mkdir(parents=True)
    (site / "my_site" / "__init__.py").write_text("")
    (site / "my_site" / "kinds.py").write_text(block.text)
    info = site / "my_site-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-site\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{e}\n" for e in entries)
            for group, entries in namespace["entry_points"].items()
        )
    )
    monkeypatch.syspath_prepend(str(site))
    notes = tmp / "notes.txt"
    settings = build_settings(
        {
            "db_url": f"sqlite://{tmp / 'db.sqlite3'}",
            "targets": {"notes": {"kind": "notebook", "path": str(notes)}},
        },
        environ={},
    )
    clock = FakeClock(T0)
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            rule = {
                "name": "note",
                "schedule": {"kind": "interval", "every": 1, "unit": "hours"},
                "task": {"kind": "note", "target": "notes", "text": "hello"},
            }
            response = await http.post("/rules", json=rule)
            assert response.status_code == 201, f"{block.where}: {response.text}"
            clock.set(T0 + timedelta(hours=1))
            await app.state.expander.run_pass()
            assert await app.state.services.dispatcher.run_pass() == 1
    assert notes.read_text() == f"{response.json()['id']}-20260105T130000Z: hello\n"


TARGET_KINDS = {"directory", "database", "rmf_http", "rmf_ws"}


async def check_json(w: World, block: Block) -> None:
    text, decoder, position, number = w.substitute(block.text), json.JSONDecoder(), 0, 0
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        document, position = decoder.raw_decode(text, position)
        number += 1
        if document["kind"] in TARGET_KINDS:
            response = await w.http.post("/targets", json={"name": f"doc-{number}", "config": document})
        else:
            rule = {"name": f"doc-{number}", "schedule": {"kind": "interval", "every": 1, "unit": "hours"}}
            response = await w.http.post("/rules", json={**rule, "task": document})
        assert response.is_success, f"{block.where}, document {number}: {response.text}"


# -- the test ----------------------------------------------------------------------------------


def test_every_block_and_table_entry_is_known():
    """A block of a language this test does not run, or a NOT_RUN or WAIT entry that no
    example has any more, would hide an unchecked example."""
    assert {"sh", "python", "json"} <= {b.lang for b in BLOCKS}
    languages = {"sh", "python", "json", *NOT_RUN_LANGUAGES}
    assert {b.lang for b in BLOCKS} <= languages, [(b.where, b.lang) for b in BLOCKS]
    docs = "".join(b.text for b in BLOCKS)
    stale = [key for key in [*NOT_RUN, *WAIT] if key.removeprefix("python ") not in docs]
    assert not stale, f"no example has these any more: {stale}"


RUN = [block for block in BLOCKS if block.lang not in NOT_RUN_LANGUAGES]


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
async def test_doc_example(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.lang == "python":
        if "class " in block.text and "TaskKind" in block.text:
            await check_plugin(tmp_path, block, monkeypatch)
        elif "entry_points = {" in block.text:
            pass  # read by the plug-in example's check, beside it
        else:
            check_config(tmp_path, block)
        return
    async with world(tmp_path, block) as w:
        if block.lang == "json":
            await check_json(w, block)
            return
        for command in commands(block):
            await run_command(
                w, command, f"{block.where} (line {command.line}): {command.text.splitlines()[0]}"
            )
        w.check_watched()


def test_the_reader_finds_commands_their_answers_and_elisions():
    """A command the reader missed, or an answer it took for prose, would go unchecked."""
    block = Block(
        ROOT / "README.md",
        10,
        "sh",
        textwrap.dedent(
            """\
            # Prose, not an answer.
            curl -s -X POST localhost:8010/rules -d '{
              "name": "x"}'   # {"id": 1, ...}
            X=$(curl -s localhost:8010/a \\
                | jq -r .id)
            # {"detail": [{"loc": ["body", "name"],
            #   "msg": "..."}]}
            curl -s localhost:8010/b      # after a while
            """
        ),
    )
    found = commands(block)
    assert [(c.line, c.output) for c in found] == [
        (11, '{"id": 1, ...}'),
        (13, '{"detail": [{"loc": ["body", "name"], "msg": "..."}]}'),
        (17, ""),
    ]
    assert shown_json('{"a": [1, ...], "b": ..., "c": "x…", ...}') == {"a": [1], "b": "...", "c": "x…"}
    assert mismatch({"a": [1], "b": "...", "c": "x…"}, {"a": [1, 2], "b": None, "c": "xyz", "d": 0}) is None
    assert mismatch({"c": "x…"}, {"c": "y"}) == ".c: 'y' does not start with 'x'"
    assert mismatch({"a": 1}, {"a": 2}) == ".a: 2 where the docs show 1"
