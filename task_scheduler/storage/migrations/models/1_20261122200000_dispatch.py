"""Dispatch: task leases, attempts and due times; rule failure counts and channels; runs; targets."""

from functools import partial

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_COLUMNS = [
    # (table, column, sqlite type, postgres type, mysql type)
    ("tasks", "target", "VARCHAR(128)", "VARCHAR(128)", "VARCHAR(128)"),
    ("tasks", "due_at", "TIMESTAMP", "TIMESTAMPTZ", "DATETIME(6)"),
    ("tasks", "attempts", "INT NOT NULL DEFAULT 0", "INT NOT NULL DEFAULT 0", "INT NOT NULL DEFAULT 0"),
    ("tasks", "lease_owner", "VARCHAR(64)", "VARCHAR(64)", "VARCHAR(64)"),
    ("tasks", "lease_until", "TIMESTAMP", "TIMESTAMPTZ", "DATETIME(6)"),
    ("tasks", "fleet_task_id", "VARCHAR(255)", "VARCHAR(255)", "VARCHAR(255)"),
    ("rules", "channel", "VARCHAR(128)", "VARCHAR(128)", "VARCHAR(128)"),
    (
        "rules",
        "consecutive_failures",
        "INT NOT NULL DEFAULT 0",
        "INT NOT NULL DEFAULT 0",
        "INT NOT NULL DEFAULT 0",
    ),
    ("rules", "paused_reason", "VARCHAR(255)", "VARCHAR(255)", "VARCHAR(255)"),
]
_DIALECTS = ("sqlite", "postgres", "mysql")

_TABLES = {
    "sqlite": """
CREATE TABLE "runs" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "task_id" VARCHAR(64) NOT NULL,
    "rule_id" INT,
    "attempt" INT NOT NULL,
    "started_at" TIMESTAMP NOT NULL,
    "finished_at" TIMESTAMP NOT NULL,
    "duration_ms" REAL NOT NULL,
    "outcome" VARCHAR(16) NOT NULL,
    "fleet_task_id" VARCHAR(255),
    "response" JSON,
    "error" TEXT,
    "replica" VARCHAR(64) NOT NULL
);
CREATE INDEX "idx_runs_task_id_31095e" ON "runs" ("task_id");
CREATE INDEX "idx_runs_rule_id_b94e10" ON "runs" ("rule_id");
CREATE INDEX "idx_runs_started_14f878" ON "runs" ("started_at");
CREATE INDEX "idx_runs_outcome_4f01ba" ON "runs" ("outcome");
CREATE TABLE "targets" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "name" VARCHAR(128) NOT NULL UNIQUE,
    "kind" VARCHAR(32) NOT NULL,
    "config" JSON NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
CREATE INDEX "idx_tasks_status_d35e8f" ON "tasks" ("status", "due_at");
""",
    "postgres": """
CREATE TABLE "runs" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "task_id" VARCHAR(64) NOT NULL,
    "rule_id" INT,
    "attempt" INT NOT NULL,
    "started_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ NOT NULL,
    "duration_ms" DOUBLE PRECISION NOT NULL,
    "outcome" VARCHAR(16) NOT NULL,
    "fleet_task_id" VARCHAR(255),
    "response" JSONB,
    "error" TEXT,
    "replica" VARCHAR(64) NOT NULL
);
CREATE INDEX "idx_runs_task_id_31095e" ON "runs" ("task_id");
CREATE INDEX "idx_runs_rule_id_b94e10" ON "runs" ("rule_id");
CREATE INDEX "idx_runs_started_14f878" ON "runs" ("started_at");
CREATE INDEX "idx_runs_outcome_4f01ba" ON "runs" ("outcome");
CREATE TABLE "targets" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "name" VARCHAR(128) NOT NULL UNIQUE,
    "kind" VARCHAR(32) NOT NULL,
    "config" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX "idx_tasks_status_d35e8f" ON "tasks" ("status", "due_at");
""",
    "mysql": """
CREATE TABLE `runs` (
    `id` BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `task_id` VARCHAR(64) NOT NULL,
    `rule_id` INT,
    `attempt` INT NOT NULL,
    `started_at` DATETIME(6) NOT NULL,
    `finished_at` DATETIME(6) NOT NULL,
    `duration_ms` DOUBLE NOT NULL,
    `outcome` VARCHAR(16) NOT NULL,
    `fleet_task_id` VARCHAR(255),
    `response` JSON,
    `error` LONGTEXT,
    `replica` VARCHAR(64) NOT NULL,
    KEY `idx_runs_task_id_31095e` (`task_id`),
    KEY `idx_runs_rule_id_b94e10` (`rule_id`),
    KEY `idx_runs_started_14f878` (`started_at`),
    KEY `idx_runs_outcome_4f01ba` (`outcome`)
) CHARACTER SET utf8mb4;
CREATE TABLE `targets` (
    `id` INT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `name` VARCHAR(128) NOT NULL UNIQUE,
    `kind` VARCHAR(32) NOT NULL,
    `config` JSON NOT NULL,
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL
) CHARACTER SET utf8mb4;
CREATE INDEX `idx_tasks_status_d35e8f` ON `tasks` (`status`, `due_at`);
""",
}


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


async def upgrade(db: BaseDBAsyncClient) -> str:
    dialect = db.schema_generator.DIALECT
    q = partial(_quote, dialect)
    column = _DIALECTS.index(dialect)
    statements = [
        f"ALTER TABLE {q(table)} ADD COLUMN {q(name)} {types[column]};" for table, name, *types in _COLUMNS
    ]
    statements.append(f"UPDATE {q('tasks')} SET {q('due_at')} = {q('scheduled_at')};")
    return "\n".join(statements) + _TABLES[dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    dialect = db.schema_generator.DIALECT
    q = partial(_quote, dialect)
    statements = [f"DROP TABLE IF EXISTS {q('runs')};", f"DROP TABLE IF EXISTS {q('targets')};"]
    statements.append(
        f"DROP INDEX {q('idx_tasks_status_d35e8f')}" + (f" ON {q('tasks')};" if dialect == "mysql" else ";")
    )
    statements += [f"ALTER TABLE {q(table)} DROP COLUMN {q(name)};" for table, name, *_ in _COLUMNS]
    return "\n".join(statements)
