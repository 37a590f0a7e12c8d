"""Data migrations on each database: what they change in rows written before them."""

from __future__ import annotations

import importlib

from tortoise import connections

from task_scheduler.storage.database import TABLES, connection_name
from task_scheduler.storage.orm import RuleRecord, TaskRecord

TASK_TARGET = importlib.import_module("task_scheduler.storage.migrations.models.2_20261122230000_task_target")
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}


async def test_tasks_stored_before_the_target_copy_get_their_rules_target_and_lose_it_on_downgrade(
    service, db_url
):
    other = {"name": "other", "config": {"kind": "rmf_http", "base_url": "http://127.0.0.1:9"}}
    assert (await service.http.post("/targets", json=other)).status_code == 201
    hourly = {"kind": "interval", "every": 1, "unit": "hours"}
    for name, target in (("lobby", "default"), ("linen", "other")):
        body = {"name": name, "schedule": hourly, "task": {**CLEAN, "target": target}}
        assert (await service.http.post("/rules", json=body)).status_code == 201
    await TaskRecord.all().update(target=None)  # as rows written before the migration were
    connection = connections.get(connection_name(db_url))

    await connection.execute_script(await TASK_TARGET.upgrade(connection))
    copied = await TaskRecord.all().values_list("rule_id", "target")
    assert copied and set(copied) == {(1, "default"), (2, "other")}  # each its own rule's

    await connection.execute_script(await TASK_TARGET.downgrade(connection))
    assert set(await TaskRecord.all().values_list("target", flat=True)) == {None}


TASK_KIND = importlib.import_module("task_scheduler.storage.migrations.models.3_20261123090000_task_kind")


async def test_the_task_kind_column_takes_each_rules_kind_and_goes_on_downgrade(service, db_url):
    hourly = {"kind": "interval", "every": 1, "unit": "hours"}
    body = {"name": "lobby", "schedule": hourly, "task": CLEAN}
    assert (await service.http.post("/rules", json=body)).status_code == 201
    await RuleRecord.filter(id=1).update(task_kind="http")  # tell the copy from the column default
    connection = connections.get(connection_name(db_url))
    q = (lambda name: f"`{name}`") if db_url.startswith("mysql") else (lambda name: f'"{name}"')

    await connection.execute_script(await TASK_KIND.downgrade(connection))
    _, rows = await connection.execute_query(f"SELECT * FROM {q('tasks')}")
    assert rows and all("kind" not in dict(row) for row in rows)

    await connection.execute_script(await TASK_KIND.upgrade(connection))
    assert set(await TaskRecord.all().values_list("kind", flat=True)) == {"http"}


USERS = importlib.import_module("task_scheduler.storage.migrations.models.4_20261123100000_users")


async def test_rules_stored_before_users_existed_have_no_author_and_the_users_migration_reverses(
    service, db_url
):
    body = {"name": "lobby", "schedule": {"kind": "interval", "every": 1, "unit": "hours"}, "task": CLEAN}
    assert (await service.http.post("/rules", json=body)).status_code == 201
    connection = connections.get(connection_name(db_url))

    await connection.execute_script(await USERS.downgrade(connection))
    _, rows = await connection.execute_query("SELECT * FROM rules")
    assert "created_by" not in dict(rows[0])
    await connection.execute_script(await USERS.upgrade(connection))

    rule = (await service.http.get("/rules/1")).json()
    assert rule["name"] == "lobby" and rule["created_by"] is None and rule["updated_by"] is None


async def test_the_migrations_make_exactly_the_tables_a_scratch_database_drops(service, db_url):
    connection = connections.get(connection_name(db_url))
    listing = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        "postgres": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
        "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    }[connection_name(db_url)]
    _, rows = await connection.execute_query(listing)
    assert {next(iter(dict(row).values())) for row in rows} == set(TABLES)
