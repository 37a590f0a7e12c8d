"""Initial schema: rules, their stored occurrences (tasks) and aerich's version table.

Written per dialect because SQLite, PostgreSQL and MySQL/MariaDB spell types differently.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE "rules" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "name" VARCHAR(200) NOT NULL UNIQUE,
    "description" TEXT NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "enabled" INT NOT NULL,
    "schedule" JSON NOT NULL,
    "schedule_version" SMALLINT NOT NULL,
    "task" JSON NOT NULL,
    "policy" JSON NOT NULL,
    "metadata" JSON NOT NULL,
    "task_kind" VARCHAR(32) NOT NULL,
    "category" VARCHAR(128),
    "target" VARCHAR(128),
    "expanded_until" TIMESTAMP,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
CREATE INDEX "idx_rules_enabled_e3ba96" ON "rules" ("enabled");
CREATE INDEX "idx_rules_categor_b5df28" ON "rules" ("category");
CREATE INDEX "idx_rules_expande_ba0844" ON "rules" ("expanded_until");
CREATE TABLE "tasks" (
    "id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "rule_id" INT,
    "original_at" TIMESTAMP NOT NULL,
    "scheduled_at" TIMESTAMP NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "status_reason" VARCHAR(255),
    "enabled" INT NOT NULL,
    "edited" INT NOT NULL,
    "request" JSON,
    "category" VARCHAR(128),
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_tasks_rule_id_37f46f" UNIQUE ("rule_id", "original_at")
);
CREATE INDEX "idx_tasks_schedul_98fb75" ON "tasks" ("scheduled_at");
CREATE INDEX "idx_tasks_status_449504" ON "tasks" ("status");
CREATE INDEX "idx_tasks_categor_efd44a" ON "tasks" ("category");
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);
""",
    "postgres": """
CREATE TABLE "rules" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "name" VARCHAR(200) NOT NULL UNIQUE,
    "description" TEXT NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "enabled" BOOL NOT NULL,
    "schedule" JSONB NOT NULL,
    "schedule_version" SMALLINT NOT NULL,
    "task" JSONB NOT NULL,
    "policy" JSONB NOT NULL,
    "metadata" JSONB NOT NULL,
    "task_kind" VARCHAR(32) NOT NULL,
    "category" VARCHAR(128),
    "target" VARCHAR(128),
    "expanded_until" TIMESTAMPTZ,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX "idx_rules_enabled_e3ba96" ON "rules" ("enabled");
CREATE INDEX "idx_rules_categor_b5df28" ON "rules" ("category");
CREATE INDEX "idx_rules_expande_ba0844" ON "rules" ("expanded_until");
CREATE TABLE "tasks" (
    "id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "rule_id" INT,
    "original_at" TIMESTAMPTZ NOT NULL,
    "scheduled_at" TIMESTAMPTZ NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "status_reason" VARCHAR(255),
    "enabled" BOOL NOT NULL,
    "edited" BOOL NOT NULL,
    "request" JSONB,
    "category" VARCHAR(128),
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_tasks_rule_id_37f46f" UNIQUE ("rule_id", "original_at")
);
CREATE INDEX "idx_tasks_schedul_98fb75" ON "tasks" ("scheduled_at");
CREATE INDEX "idx_tasks_status_449504" ON "tasks" ("status");
CREATE INDEX "idx_tasks_categor_efd44a" ON "tasks" ("category");
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);
""",
    "mysql": """
CREATE TABLE `rules` (
    `id` INT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `name` VARCHAR(200) NOT NULL UNIQUE,
    `description` LONGTEXT NOT NULL,
    `timezone` VARCHAR(64) NOT NULL,
    `enabled` BOOL NOT NULL,
    `schedule` JSON NOT NULL,
    `schedule_version` SMALLINT NOT NULL,
    `task` JSON NOT NULL,
    `policy` JSON NOT NULL,
    `metadata` JSON NOT NULL,
    `task_kind` VARCHAR(32) NOT NULL,
    `category` VARCHAR(128),
    `target` VARCHAR(128),
    `expanded_until` DATETIME(6),
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL,
    KEY `idx_rules_enabled_e3ba96` (`enabled`),
    KEY `idx_rules_categor_b5df28` (`category`),
    KEY `idx_rules_expande_ba0844` (`expanded_until`)
) CHARACTER SET utf8mb4;
CREATE TABLE `tasks` (
    `id` VARCHAR(64) NOT NULL PRIMARY KEY,
    `rule_id` INT,
    `original_at` DATETIME(6) NOT NULL,
    `scheduled_at` DATETIME(6) NOT NULL,
    `status` VARCHAR(16) NOT NULL,
    `status_reason` VARCHAR(255),
    `enabled` BOOL NOT NULL,
    `edited` BOOL NOT NULL,
    `request` JSON,
    `category` VARCHAR(128),
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL,
    UNIQUE KEY `uid_tasks_rule_id_37f46f` (`rule_id`, `original_at`),
    KEY `idx_tasks_schedul_98fb75` (`scheduled_at`),
    KEY `idx_tasks_status_449504` (`status`),
    KEY `idx_tasks_categor_efd44a` (`category`)
) CHARACTER SET utf8mb4;
CREATE TABLE IF NOT EXISTS `aerich` (
    `id` INT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `version` VARCHAR(255) NOT NULL,
    `app` VARCHAR(100) NOT NULL,
    `content` JSON NOT NULL
) CHARACTER SET utf8mb4;
""",
}

DOWNGRADE = {
    "sqlite": 'DROP TABLE IF EXISTS "tasks"; DROP TABLE IF EXISTS "rules";',
    "postgres": 'DROP TABLE IF EXISTS "tasks"; DROP TABLE IF EXISTS "rules";',
    "mysql": "DROP TABLE IF EXISTS `tasks`; DROP TABLE IF EXISTS `rules`;",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return UPGRADE[db.schema_generator.DIALECT]


async def downgrade(db: BaseDBAsyncClient) -> str:
    return DOWNGRADE[db.schema_generator.DIALECT]
