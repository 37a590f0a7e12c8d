"""A table for the readiness probe's write: a row written and deleted in one transaction."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_TABLES = {
    "sqlite": 'CREATE TABLE "health" ("id" VARCHAR(36) NOT NULL PRIMARY KEY, "pad" BLOB NOT NULL);',
    "postgres": 'CREATE TABLE "health" ("id" VARCHAR(36) NOT NULL PRIMARY KEY, "pad" BYTEA NOT NULL);',
    "mysql": "CREATE TABLE `health` (`id` VARCHAR(36) NOT NULL PRIMARY KEY, `pad` LONGBLOB NOT NULL)"
    " CHARACTER SET utf8mb4;",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _TABLES[db.schema_generator.DIALECT]


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        "DROP TABLE IF EXISTS `health`;"
        if db.schema_generator.DIALECT == "mysql"
        else 'DROP TABLE IF EXISTS "health";'
    )
