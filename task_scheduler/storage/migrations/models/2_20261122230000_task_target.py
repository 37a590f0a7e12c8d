"""Every task of a rule carries its rule's target, so that claims can filter on it alone."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


async def upgrade(db: BaseDBAsyncClient) -> str:
    tasks, rules, target, rule_id, rule_key = (
        _quote(db.schema_generator.DIALECT, name) for name in ("tasks", "rules", "target", "rule_id", "id")
    )
    return (
        f"UPDATE {tasks} SET {target} = (SELECT COALESCE(r.{target}, 'default') FROM {rules} r"
        f" WHERE r.{rule_key} = {tasks}.{rule_id}) WHERE {target} IS NULL AND {rule_id} IS NOT NULL;"
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    tasks, target, rule_id = (
        _quote(db.schema_generator.DIALECT, name) for name in ("tasks", "target", "rule_id")
    )
    return f"UPDATE {tasks} SET {target} = NULL WHERE {rule_id} IS NOT NULL;"
