"""Two indexes on rules for a listing: updated_at, whose latest value (one step down it)
tells whether the rules a listing keeps in memory are current; and (enabled,
expanded_until), which finds where the enabled rules' stored occurrences end first in one
step, where SQLite would otherwise sort every enabled rule."""

from functools import partial

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_INDEXES = {
    "idx_rules_updated_e17941": ("updated_at",),
    "idx_rules_enabled_987724": ("enabled", "expanded_until"),
}


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


async def upgrade(db: BaseDBAsyncClient) -> str:
    q = partial(_quote, db.schema_generator.DIALECT)
    return "\n".join(
        f"CREATE INDEX {q(name)} ON {q('rules')} ({', '.join(q(column) for column in columns)});"
        for name, columns in _INDEXES.items()
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    dialect = db.schema_generator.DIALECT
    q = partial(_quote, dialect)
    on = f" ON {q('rules')}" if dialect == "mysql" else ""
    return "\n".join(f"DROP INDEX {q(name)}{on};" for name in _INDEXES)
