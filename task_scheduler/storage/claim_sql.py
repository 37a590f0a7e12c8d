"""The dispatcher's hot statements, written out so that each is one round trip.

Claiming through the ORM takes four (begin, select, update, commit) and finding the next
due time two; under API load every round trip waits its turn on the connection and on
the event loop, which is most of a task's lateness. SQLite (3.35 and later) and
PostgreSQL claim in one ``UPDATE ... RETURNING`` (PostgreSQL picking its rows with
``FOR UPDATE SKIP LOCKED``); MySQL and MariaDB have no ``UPDATE ... RETURNING`` and keep
the ORM's transaction.

On PostgreSQL each statement's text is the same whatever the number of rows or ids: lists
go in as arrays (``unnest``, ``<> ALL``), so asyncpg prepares each text once and reuses
it, where a text per list length would be parsed and planned again and again.

Pure functions: they build SQL text and its parameters, the store runs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from task_scheduler.domain.tasks import TaskStatus

SCHEDULED = TaskStatus.scheduled.value
DISPATCHING = TaskStatus.dispatching.value


def one_statement_claims(dialect: str) -> bool:
    """Whether this database claims in a single ``UPDATE ... RETURNING``."""
    if dialect == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 35)
    return dialect == "postgres"


class _Params:
    """Collects parameters and writes each one's placeholder in the dialect's style."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect
        self.postgres = dialect == "postgres"
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        if self.postgres:
            return f"${len(self.values)}"
        return "%s" if self._dialect == "mysql" else "?"

    def arrays(self, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> str:
        """PostgreSQL: rows as one typed array per column, for ``unnest``."""
        columns = zip(*rows, strict=True) if rows else [() for _ in types]
        return ", ".join(
            f"{self(list(column))}::{kind}[]" for column, kind in zip(columns, types, strict=True)
        )

    def many(self, values: Sequence[Any]) -> str:
        return ", ".join(self(value) for value in values)

    def rows(self, rows: Sequence[Sequence[Any]]) -> str:
        """A ``VALUES`` list's rows: ``(a, b), (c, d)``."""
        return ", ".join(f"({self.many(row)})" for row in rows)


def _not_for(targets: Sequence[str], param: _Params) -> str:
    """Leave out tasks for these targets; a task without a target goes to ``default``."""
    if param.postgres:  # the same text for any number of targets, none included
        return f" AND COALESCE(target, 'default') <> ALL({param(list(targets))}::varchar[])"
    if not targets:
        return ""
    listed = f"target IS NOT NULL AND target NOT IN ({param.many(targets)})"
    return f" AND {listed}" if "default" in targets else f" AND (target IS NULL OR {listed})"


def claim(
    dialect: str,
    *,
    now: Any,
    due_by: Any,
    owner: str,
    lease_until: Any,
    limit: int,
    busy: Sequence[str],
    saturated: Sequence[str],
    db_time: Callable[[Any], Any],
    columns: Sequence[str],
) -> tuple[str, list[Any]]:
    """Lease up to ``limit`` tasks due by ``due_by`` (or whose lease ended before ``now``),
    earliest due first (on PostgreSQL, those whose lease ended first), and return their
    ``columns``. ``db_time`` turns a datetime into the column's stored form."""
    param = _Params(dialect)
    # SQLite's placeholders are taken in text order: the SET list, then the row picking.
    sets = (
        f"status = '{DISPATCHING}', lease_owner = {param(owner)},"
        f" lease_until = {param(db_time(lease_until))}, attempts = attempts + 1,"
        f" updated_at = {param(db_time(now))}"
    )

    def earliest(condition: str, most: Callable[[], str], lock: str = "") -> str:
        """The earliest due rows meeting ``condition``: an index's range, read in order.
        ``most`` writes the LIMIT, after the other parameters (SQLite takes them in order)."""
        # this replica's own dispatches in flight: never claim them twice
        if param.postgres:
            condition += f" AND id <> ALL({param(list(busy))}::varchar[])"
        elif busy:
            condition += f" AND id NOT IN ({param.many(busy)})"
        condition += _not_for(saturated, param)
        return f"SELECT id, due_at FROM tasks WHERE {condition} ORDER BY due_at LIMIT {most()}{lock}"

    # Two ranges, each read through the (status, due_at) index, rather than one OR that
    # makes the database scan and sort every task: the few in dispatch whose lease ran
    # out, and the scheduled ones due by now.
    expired_ones = f"status = '{DISPATCHING}' AND lease_until < {param(db_time(now))}"
    if dialect == "postgres":
        # Each range locks only what it takes (a row locked and left would be passed over
        # by another replica's claim): the expired first, then the scheduled filling the rest.
        lock = " FOR UPDATE SKIP LOCKED"
        expired = earliest(expired_ones, lambda: param(limit), lock)
        due = f"status = '{SCHEDULED}' AND due_at <= {param(db_time(due_by))}"
        scheduled = earliest(due, lambda: f"{param(limit)} - (SELECT count(*) FROM expired)", lock)
        # The picked ids go in as an array, looked up by primary key: joined as a table,
        # they made the planner hash every task (a LIMIT it cannot know when it plans, so
        # it guesses a thousand rows), a read of the whole table for each claim.
        return (
            f"WITH expired AS ({expired}), scheduled AS ({scheduled}),"
            " picked AS (SELECT id FROM expired UNION ALL SELECT id FROM scheduled)"
            f" UPDATE tasks SET {sets} WHERE id = ANY(ARRAY(SELECT id FROM picked))"
            f" RETURNING {', '.join(columns)}",
            param.values,
        )
    expired = earliest(expired_ones, lambda: param(limit))
    scheduled = earliest(
        f"status = '{SCHEDULED}' AND due_at <= {param(db_time(due_by))}", lambda: param(limit)
    )
    picked = (
        f"SELECT id FROM (SELECT * FROM ({expired}) UNION ALL SELECT * FROM ({scheduled}))"
        f" ORDER BY due_at LIMIT {param(limit)}"
    )
    return f"UPDATE tasks SET {sets} WHERE id IN ({picked}) RETURNING {', '.join(columns)}", param.values


def rows_by_id(dialect: str, table: str, columns: Sequence[str], ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Some columns of the rows with these (integer) ids."""
    param = _Params(dialect)
    wanted = f"= ANY({param(list(ids))}::int[])" if param.postgres else f"IN ({param.many(ids)})"
    return f"SELECT {', '.join(columns)} FROM {table} WHERE id {wanted}", param.values


def next_due(dialect: str, *, saturated: Sequence[str]) -> tuple[str, list[Any]]:
    """The earliest due time of a scheduled task and the earliest end of a lease, as two
    columns of one row; each found through its index, as the ORM's two queries were."""
    param = _Params(dialect)
    scheduled = (
        f"SELECT due_at FROM tasks WHERE status = '{SCHEDULED}'{_not_for(saturated, param)}"
        " ORDER BY due_at LIMIT 1"
    )
    leased = (
        f"SELECT lease_until FROM tasks WHERE status = '{DISPATCHING}'{_not_for(saturated, param)}"
        " ORDER BY lease_until LIMIT 1"
    )
    return f"SELECT ({scheduled}) AS due_at, ({leased}) AS lease_until", param.values


def owned(dialect: str, *, ids: Sequence[str], owner: str) -> tuple[str, list[Any]]:
    """Which of these tasks this replica still holds under its lease, each locked (in id
    order, so two replicas never wait on each other) until the transaction ends."""
    param = _Params(dialect)
    sql = (
        f"SELECT id FROM tasks WHERE lease_owner = {param(owner)} AND status = '{DISPATCHING}'"
        f" AND id IN ({param.many(ids)}) ORDER BY id"
    )
    return sql + ("" if dialect == "sqlite" else " FOR UPDATE"), param.values


SETTLE_ORDER = ("status", "status_reason", "updated_at", "due_at", "fleet_task_id", "unsent", "id")
"""The parameters of ``settle_task``, in order."""


def settle_task(dialect: str) -> str:
    """One task's outcome, for ``executemany``: the lease ends, the status and reason are
    set, a retry's ``due_at`` and a success's fleet task id kept when given (NULL keeps
    the stored one), and ``unsent`` (1 or 0) takes back the attempt the claim counted."""
    param = _Params(dialect)
    status, reason, updated, due, fleet, unsent, task = (param(None) for _ in SETTLE_ORDER)
    return (
        f"UPDATE tasks SET lease_owner = NULL, lease_until = NULL, status = {status},"
        f" status_reason = {reason}, updated_at = {updated}, due_at = COALESCE({due}, due_at),"
        f" fleet_task_id = COALESCE({fleet}, fleet_task_id), attempts = attempts - {unsent}"
        f" WHERE id = {task}"
    )


_SETTLE_TYPES = ("varchar", "varchar", "timestamptz", "timestamptz", "varchar", "int", "varchar")
"""PostgreSQL's types for ``SETTLE_ORDER``, its arrays' element types."""


def settle_rows(dialect: str, rows: Sequence[Sequence[Any]], owner: str) -> tuple[str, list[Any]]:
    """Many tasks' outcomes in one ``UPDATE ... FROM (VALUES ...)``, each row in
    ``SETTLE_ORDER`` (as ``settle_task``'s), applied only where this replica still holds
    the claim; returns the ids it applied to. SQLite (3.35 and later) and PostgreSQL."""
    param = _Params(dialect)
    update = _settle_update(dialect, rows, owner, param)
    if dialect == "postgres":  # Tortoise fetches rows only from a statement not opening with UPDATE
        return f"WITH settled AS ({update}) SELECT id FROM settled", param.values
    return update, param.values


def settle_and_insert(
    rows: Sequence[Sequence[Any]],
    owner: str,
    table: str,
    columns: Sequence[str],
    inserted: Sequence[Sequence[Any]],
    types: Sequence[str],
) -> tuple[str, list[Any]]:
    """PostgreSQL: ``settle_rows`` and the runs' ``insert_rows`` as one statement, atomic
    without a transaction of its own: one round trip for a whole group of outcomes.
    ``types`` are the inserted columns' PostgreSQL types."""
    param = _Params("postgres")
    update = _settle_update("postgres", rows, owner, param)
    sql = (
        f"WITH settled AS ({update}),"
        f" recorded AS (INSERT INTO {table} ({', '.join(columns)})"
        f" SELECT * FROM unnest({param.arrays(inserted, types)}))"
        " SELECT id FROM settled"
    )
    return sql, param.values


def _settle_update(dialect: str, rows: Sequence[Sequence[Any]], owner: str, param: _Params) -> str:
    if dialect == "postgres":
        source = f"unnest({param.arrays(rows, _SETTLE_TYPES)}) AS v({', '.join(SETTLE_ORDER)})"
        column = {name: f"v.{name}" for name in SETTLE_ORDER}
    else:  # SQLite names a VALUES list's columns column1, column2, ...
        source = f"(VALUES {param.rows(rows)}) AS v"
        column = {name: f"v.column{i}" for i, name in enumerate(SETTLE_ORDER, start=1)}
    return (
        f"UPDATE tasks SET lease_owner = NULL, lease_until = NULL, status = {column['status']},"
        f" status_reason = {column['status_reason']}, updated_at = {column['updated_at']},"
        f" due_at = COALESCE({column['due_at']}, tasks.due_at),"
        f" fleet_task_id = COALESCE({column['fleet_task_id']}, tasks.fleet_task_id),"
        f" attempts = tasks.attempts - {column['unsent']}"
        f" FROM {source} WHERE tasks.id = {column['id']} AND tasks.lease_owner = {param(owner)}"
        f" AND tasks.status = '{DISPATCHING}' RETURNING tasks.id"
    )


def insert_rows(
    dialect: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """Many rows in one ``INSERT ... VALUES (...), (...)``."""
    param = _Params(dialect)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {param.rows(rows)}", param.values


def add_failures(dialect: str, *, reset: bool) -> str:
    """For ``executemany`` over (count, rule id): a rule's failures in a row, counted on
    from the stored count, or (``reset``) from zero after a success."""
    param = _Params(dialect)
    count, rule = param(None), param(None)
    counted = count if reset else f"consecutive_failures + {count}"
    return f"UPDATE rules SET consecutive_failures = {counted} WHERE id = {rule}"


def failures_of(dialect: str, rule_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Each rule's failures in a row and pause, locked until the transaction ends."""
    param = _Params(dialect)
    sql = (
        f"SELECT id, consecutive_failures, paused_reason FROM rules WHERE id IN ({param.many(rule_ids)})"
        " ORDER BY id"
    )
    return sql + ("" if dialect == "sqlite" else " FOR UPDATE"), param.values


def pause(dialect: str) -> str:
    """For ``executemany`` over (reason, rule id): pause a rule that has failed too often."""
    param = _Params(dialect)
    reason, rule = param(None), param(None)
    return f"UPDATE rules SET paused_reason = {reason} WHERE id = {rule} AND paused_reason IS NULL"
