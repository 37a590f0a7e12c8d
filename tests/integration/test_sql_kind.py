"""``sql`` tasks end to end: a nightly job against a real scratch database of each kind
(a SQLite file, PostgreSQL and MariaDB databases ``ts_sql_target``), driven pass by pass
with a fake clock; and the ways a rule might try to get around the configured queries."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from task_scheduler.events import EventType
from task_scheduler.testing.service_process import free_port
from tests.databases import MYSQL_URL, POSTGRES_URL, _parts, _unavailable, clean_database
from tests.integration.conftest import T0, Service

TARGET_DB = "ts_sql_target"
SECRET = "hunter2-never-shown"
NIGHTLY = {"kind": "daily", "times": ["02:00"], "start": "2026-01-05T00:00:00"}
ROWS = [(1, "alpha", 40, "1.50"), (2, "beta", 5, "2.25"), (3, "gamma", 90, "10.00"), (4, "delta", 1, "0.10")]
CREATE = (
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, name VARCHAR(100), age_days INTEGER, amount DECIMAL(10,2))"
)
AMOUNTS = {"sqlite": [1.5, 2.25]}
"""SQLite has no decimal type: it stores DECIMAL columns as floats."""
SLOW = {
    "postgres": "SELECT pg_sleep(:s)",
    "mariadb": "SELECT SLEEP(:s)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :s)"
    " SELECT count(*) FROM c",
}
SLOW_ARG = {"postgres": 30, "mariadb": 30, "sqlite": 10**12}


def queries(kind: str) -> dict[str, Any]:
    return {
        "purge_old": {"sql": "DELETE FROM audit WHERE age_days > :days", "mode": "write"},
        "by_name": {"sql": "SELECT id, name FROM audit WHERE name = :name", "mode": "read"},
        "report": {"sql": "SELECT id, name, amount FROM audit ORDER BY id", "mode": "read", "max_rows": 2},
        "sneaky": {"sql": "DELETE FROM audit", "mode": "read"},
        "slow": {"sql": SLOW[kind], "mode": "read"},
    }


async def _scratch_postgres() -> str:
    import asyncpg

    user, _, host, port, _ = _parts(POSTGRES_URL)
    admin = await asyncpg.connect(user=user, host=host, port=port, database="postgres", timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TARGET_DB):
            await admin.execute(f'CREATE DATABASE "{TARGET_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(user=user, host=host, port=port, database=TARGET_DB, timeout=5)
    try:
        await conn.execute("DROP TABLE IF EXISTS audit")
        await conn.execute(CREATE)
        await conn.executemany("INSERT INTO audit VALUES ($1, $2, $3, $4::numeric)", ROWS)
    finally:
        await conn.close()
    return f"postgres://{user}@{host}:{port}/{TARGET_DB}"


async def _scratch_mariadb() -> str:
    import asyncmy

    user, password, host, port, _ = _parts(MYSQL_URL)
    conn = await asyncmy.connect(host=host, port=port, user=user, password=password, connect_timeout=5)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{TARGET_DB}`")
            await cursor.execute(f"USE `{TARGET_DB}`")
            await cursor.execute("DROP TABLE IF EXISTS audit")
            await cursor.execute(CREATE)
            await cursor.executemany("INSERT INTO audit VALUES (%s, %s, %s, %s)", ROWS)
        await conn.commit()
    finally:
        conn.close()
    return f"mysql://{user}@{host}:{port}/{TARGET_DB}"


def _scratch_sqlite(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(CREATE)
        conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", ROWS)
    return f"sqlite://{path}"


async def _count(kind: str, url: str) -> int:
    if kind == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
            return conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    if kind == "postgres":
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
        try:
            return await conn.fetchval("SELECT count(*) FROM audit")
        finally:
            await conn.close()
    import asyncmy

    user, password, host, port, database = _parts(url)
    conn = await asyncmy.connect(host=host, port=port, user=user, password=password, db=database)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT count(*) FROM audit")
            return (await cursor.fetchone())[0]
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def db_url(kind: str, tmp_path: Path) -> str:
    """The scheduler's own database, of the same kind as the target's."""
    return await clean_database(kind, tmp_path)


@pytest.fixture
async def scratch(kind: str, tmp_path: Path, db_url: str) -> str:
    """The URL (without password) of a fresh ``audit`` table in the target database."""
    if kind == "sqlite":
        return _scratch_sqlite(tmp_path / "site.sqlite3")
    try:
        return await (_scratch_postgres() if kind == "postgres" else _scratch_mariadb())
    except OSError as exc:
        _unavailable(kind, exc)
        raise


async def add_target(service: Service, url: str, *, password: str | None = None, **extra: Any) -> None:
    kind = "sqlite" if url.startswith("sqlite") else "mariadb" if url.startswith("mysql") else "postgres"
    config = {"kind": "database", "url": url, "queries": queries(kind), "timeout_s": 5, **extra}
    if password:
        config["password"] = password
    response = await service.http.post("/targets", json={"name": "reports", "config": config})
    assert response.status_code == 201, response.text


def sql_rule(query: str, params: dict[str, Any] | None = None, **task: Any) -> dict[str, Any]:
    document = {"kind": "sql", "target": "reports", "query": query, "params": params or {}, **task}
    return {"name": f"nightly {query}", "schedule": NIGHTLY, "task": document, "channel": "ops"}


async def run_nightly(service: Service, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create the rule, move to 02:00 the next night, dispatch; the run of that occurrence."""
    response = await service.http.post("/rules", json=sql_rule(query, params))
    assert response.status_code == 201, response.text
    service.clock.advance(hours=14)
    await service.dispatch()
    task_id = f"{response.json()['id']}-{(T0 + timedelta(hours=14)).strftime('%Y%m%dT%H%M%SZ')}"
    runs = (await service.http.get(f"/tasks/{task_id}/runs")).json()
    assert len(runs) == 1, runs
    return runs[0]


async def test_a_nightly_purge_reports_rows_affected_in_the_run_and_on_the_channel(service, kind, scratch):
    await add_target(service, scratch, password=None if kind == "mariadb" else SECRET)
    seen = []
    service.app.state.services.events.stream.subscribe(seen.append)
    run = await run_nightly(service, "purge_old", {"days": 30})
    assert run["outcome"] == "succeeded", run
    assert run["response"] == {"rows_affected": 2}
    assert await _count(kind, scratch) == 2
    finished = [e for e in seen if e.type is EventType.run_finished and e.channel == "ops"]
    assert [e.data["response"] for e in finished] == [{"rows_affected": 2}]
    listed = (await service.http.get("/runs", params={"rule_id": run["rule_id"]})).json()
    assert listed["items"][0]["response"] == {"rows_affected": 2}


async def test_a_read_keeps_bounded_rows_as_json(service, kind, scratch):
    await add_target(service, scratch)
    run = await run_nightly(service, "report")
    assert run["outcome"] == "succeeded", run
    amounts = AMOUNTS.get(kind, ["1.50", "2.25"])  # decimals as exact text
    assert run["response"] == {
        "columns": ["id", "name", "amount"],
        "rows": [[1, "alpha", amounts[0]], [2, "beta", amounts[1]]],
        "row_count": 2,
        "truncated": True,
    }


async def test_an_injection_attempt_is_only_a_bound_value(service, kind, scratch):
    await add_target(service, scratch)
    run = await run_nightly(service, "by_name", {"name": "x'; DROP TABLE audit; --"})
    assert run["outcome"] == "succeeded", run
    assert run["response"]["rows"] == []
    assert await _count(kind, scratch) == len(ROWS)


async def test_a_read_query_cannot_write(service, kind, scratch):
    await add_target(service, scratch)
    run = await run_nightly(service, "sneaky")
    assert run["outcome"] == "rejected", run
    assert await _count(kind, scratch) == len(ROWS)


async def test_the_target_timeout_cancels_the_statement_and_retries(service, kind, scratch):
    await add_target(service, scratch, timeout_s=0.5)
    run = await run_nightly(service, "slow", {"s": SLOW_ARG[kind]})
    assert run["outcome"] == "timeout", run["error"]
    task = (await service.http.get(f"/tasks/{run['task_id']}")).json()
    assert task["status"] == "scheduled"  # a cancelled read changed nothing: retried


async def test_the_password_never_shows(service, kind, scratch, caplog):
    caplog.set_level(logging.DEBUG, logger="task_scheduler")
    await add_target(service, scratch, password=SECRET)
    seen = []
    service.app.state.services.events.stream.subscribe(seen.append)
    run = await run_nightly(service, "purge_old", {"days": 30})
    # MariaDB's root has no password, so there the run is refused: its error must not leak it either.
    assert run["outcome"] == ("rejected" if kind == "mariadb" else "succeeded"), run
    shown = [
        (await service.http.get("/targets/reports")).text,
        (await service.http.get("/targets")).text,
        (await service.http.get("/runs")).text,
        repr([e.to_json() for e in seen]),
        "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("task_scheduler")),
    ]
    assert all(SECRET not in text for text in shown)
    assert (await service.http.get("/targets/reports")).json()["config"]["secrets_set"] == ["password"]


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"query": "by_name", "params": {"name": "x"}, "sql": "DROP TABLE audit"}, ["task", "sql"]),
        ({"query": "drop_everything"}, ["task", "query"]),
        ({"query": "purge_old", "params": {}}, ["task", "params", "days"]),
        ({"query": "purge_old", "params": {"days": 1, "extra": 2}}, ["task", "params", "extra"]),
        ({"query": "purge_old", "params": {"days": [1]}}, ["task", "params", "days"]),
        ({"query": "purge_old", "params": {"days": 1}, "target": "web"}, ["task", "target"]),
    ],
)
async def test_a_rule_cannot_get_around_the_configured_queries(service, scratch, task, field):
    await add_target(service, scratch)
    web = {"name": "web", "config": {"kind": "http", "base_url": "http://127.0.0.1:9"}}
    assert (await service.http.post("/targets", json=web)).status_code == 201
    body = sql_rule("x")
    body["task"] = {"kind": "sql", "target": "reports", **task}
    response = await service.http.post("/rules", json=body)
    assert response.status_code == 422, response.text
    # Pydantic names the kind in the path of what its model refused: task.sql.<field>.
    locs = [
        [part for i, part in enumerate(e["loc"]) if (i, part) != (2, "sql")]
        for e in response.json()["detail"]
    ]
    assert [e["msg"] for e in response.json()["detail"]] and field in [loc[1:] for loc in locs], response.text


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
async def test_a_sqlite_target_may_be_written_with_four_slashes(service, scratch):
    await add_target(service, scratch.replace("sqlite://", "sqlite:///"))
    run = await run_nightly(service, "purge_old", {"days": 30})
    assert run["outcome"] == "succeeded", run
    assert run["response"] == {"rows_affected": 2}


@pytest.mark.parametrize("kind", ["postgres"], indirect=True)
async def test_a_database_host_outside_the_allowlist_is_refused(service):
    config = {
        "kind": "database",
        "url": "postgres://postgres@10.255.0.1:5432/x",
        "queries": queries("postgres"),
    }
    response = await service.http.post("/targets", json={"name": "reports", "config": config})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "config", "url"],
            "msg": "10.255.0.1 is not in outbound_allowlist",
            "type": "value_error",
        }
    ]


@pytest.mark.parametrize("kind", ["postgres"], indirect=True)
async def test_a_database_that_refuses_connections_is_an_outage(service):
    await add_target(service, f"postgres://postgres@127.0.0.1:{free_port()}/x")
    run = await run_nightly(service, "purge_old", {"days": 1})
    assert run["outcome"] == "failed" and run["error"].startswith("cannot connect"), run
    task = (await service.http.get(f"/tasks/{run['task_id']}")).json()
    assert task["status"] == "scheduled"


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
async def test_target_configuration_is_checked(service, tmp_path):
    bad = {
        "url": {"kind": "database", "url": "oracle://db/x", "queries": queries("sqlite")},
        "queries": {
            "kind": "database",
            "url": f"sqlite://{tmp_path}/x.db",
            "queries": {"two": {"sql": "SELECT 1; DROP TABLE audit", "mode": "read"}},
        },
    }
    for field, config in bad.items():
        response = await service.http.post("/targets", json={"name": "bad", "config": config})
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"][0]["loc"], response.text
