"""Built-in users, and who created and last changed each rule."""

from functools import partial

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_COLUMNS = [("rules", "created_by"), ("rules", "updated_by")]

_TABLES = {
    "sqlite": """
CREATE TABLE "users" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "username" VARCHAR(128) NOT NULL UNIQUE,
    "password_hash" VARCHAR(255) NOT NULL,
    "role" VARCHAR(16) NOT NULL,
    "enabled" INT NOT NULL DEFAULT 1,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
""",
    "postgres": """
CREATE TABLE "users" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "username" VARCHAR(128) NOT NULL UNIQUE,
    "password_hash" VARCHAR(255) NOT NULL,
    "role" VARCHAR(16) NOT NULL,
    "enabled" BOOL NOT NULL DEFAULT TRUE,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
""",
    "mysql": """
CREATE TABLE `users` (
    `id` INT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `username` VARCHAR(128) NOT NULL UNIQUE,
    `password_hash` VARCHAR(255) NOT NULL,
    `role` VARCHAR(16) NOT NULL,
    `enabled` BOOL NOT NULL DEFAULT 1,
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL
) CHARACTER SET utf8mb4;
""",
}


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


async def upgrade(db: BaseDBAsyncClient) -> str:
    dialect = db.schema_generator.DIALECT
    q = partial(_quote, dialect)
    statements = [f"ALTER TABLE {q(table)} ADD COLUMN {q(name)} VARCHAR(128);" for table, name in _COLUMNS]
    return "\n".join(statements) + _TABLES[dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    q = partial(_quote, db.schema_generator.DIALECT)
    statements = [f"DROP TABLE IF EXISTS {q('users')};"]
    statements += [f"ALTER TABLE {q(table)} DROP COLUMN {q(name)};" for table, name in _COLUMNS]
    return "\n".join(statements)
