"""Every task names its kind (rmf, http, sql, file, ...), so tasks list and delete by kind
without a join, and a task without a rule (a timer) still says what it is."""

from functools import partial

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


async def upgrade(db: BaseDBAsyncClient) -> str:
    q = partial(_quote, db.schema_generator.DIALECT)
    return "\n".join(
        [
            f"ALTER TABLE {q('tasks')} ADD COLUMN {q('kind')} VARCHAR(32) NOT NULL DEFAULT 'rmf';",
            f"UPDATE {q('tasks')} SET {q('kind')} = (SELECT r.{q('task_kind')} FROM {q('rules')} r"
            f" WHERE r.{q('id')} = {q('tasks')}.{q('rule_id')}) WHERE {q('rule_id')} IN"
            f" (SELECT {q('id')} FROM {q('rules')});",
            f"CREATE INDEX {q('idx_tasks_kind_4c1d2a')} ON {q('tasks')} ({q('kind')});",
        ]
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    dialect = db.schema_generator.DIALECT
    q = partial(_quote, dialect)
    return "\n".join(
        [
            f"DROP INDEX {q('idx_tasks_kind_4c1d2a')}"
            + (f" ON {q('tasks')};" if dialect == "mysql" else ";"),
            f"ALTER TABLE {q('tasks')} DROP COLUMN {q('kind')};",
        ]
    )
