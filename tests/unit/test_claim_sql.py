"""The written-out claim statements: parameters in each dialect's style, in text order."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone

import pytest

from task_scheduler.storage import claim_sql
from task_scheduler.storage.store import RUN_COLUMNS, RUN_TYPES

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 11, 23, 12, 1, tzinfo=timezone.utc)
AHEAD = datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=timezone.utc)


def claim(dialect: str, **overrides):
    arguments = dict(
        now=NOW,
        due_by=AHEAD,
        owner="replica-a",
        lease_until=LATER,
        limit=5,
        busy=["t1"],
        saturated=["slow"],
        db_time=str,
        columns=("id", "due_at"),
    )
    return claim_sql.claim(dialect, **{**arguments, **overrides})


def test_postgres_numbers_every_parameter_and_picks_rows_with_skip_locked() -> None:
    sql, values = claim("postgres")
    assert sorted(int(n) for n in re.findall(r"\$(\d+)", sql)) == list(range(1, len(values) + 1))
    assert "FOR UPDATE SKIP LOCKED" in sql and sql.endswith("RETURNING id, due_at")
    assert "WHERE id = ANY(ARRAY(SELECT id FROM picked))" in sql  # by primary key, not a join
    # owner, lease, updated_at; then the leases ended before now and the scheduled due by
    # (claiming ahead), each range leaving out the busy and the saturated
    expired, scheduled = [str(NOW), ["t1"], ["slow"], 5], [str(AHEAD), ["t1"], ["slow"], 5]
    assert values == ["replica-a", str(LATER), str(NOW), *expired, *scheduled]


def test_postgres_texts_are_the_same_for_any_number_of_ids_or_rows() -> None:
    """asyncpg prepares a statement per distinct text: a text per list length would be
    parsed and planned again for almost every claim and every group of outcomes."""
    claims = {
        claim("postgres", busy=busy, saturated=off)[0]
        for busy in ([], ["a"], ["a", "b"])
        for off in ([], ["x", "default"])
    }
    assert len(claims) == 1
    assert len({claim_sql.next_due("postgres", saturated=off)[0] for off in ([], ["x"], ["x", "y"])}) == 1
    assert len({claim_sql.rows_by_id("postgres", "rules", ("id",), ids)[0] for ids in ([1], [1, 2, 3])}) == 1
    row = ["succeeded", None, NOW, None, "f1", 0, "t1"]
    run = ["t1", 1, 1, NOW, NOW, 2.0, "succeeded", "f1", "{}", None, "r"]
    texts = {
        claim_sql.settle_and_insert([row] * n, "r", "runs", RUN_COLUMNS, [run] * n, RUN_TYPES)[0]
        for n in (1, 2, 7)
    }
    settled = {claim_sql.settle_rows("postgres", [row] * n, "r")[0] for n in (1, 2, 7)}
    assert len(texts) == len(settled) == 1
    _, values = claim_sql.settle_and_insert([row] * 2, "r", "runs", RUN_COLUMNS, [run] * 2, RUN_TYPES)
    assert values[0] == ["succeeded", "succeeded"] and values[-1] == ["r", "r"]  # one array per column


@pytest.mark.parametrize("dialect, mark", [("sqlite", "?"), ("mysql", "%s")])
def test_other_dialects_mark_every_parameter_of_next_due(dialect: str, mark: str) -> None:
    sql, values = claim_sql.next_due(dialect, saturated=["a", "default"])
    assert sql.count(mark) == len(values) == 4


CREATE = """CREATE TABLE tasks (id TEXT PRIMARY KEY, status TEXT, due_at TEXT, target TEXT,
    lease_owner TEXT, lease_until TEXT, attempts INT, updated_at TEXT)"""


@pytest.mark.skipif(not claim_sql.one_statement_claims("sqlite"), reason="SQLite older than 3.35")
def test_sqlite_claims_the_due_in_one_statement_leaving_out_busy_and_saturated() -> None:
    """Due means due by the claim-ahead instant; a lease must have ended before now."""
    db = sqlite3.connect(":memory:")
    db.execute(CREATE)
    rows = [
        ("t1", "dispatching", "1", None, "replica-a", "3", 1),  # in flight here (busy), lease run out
        ("t2", "scheduled", "2", None, None, None, 0),
        ("t3", "scheduled", "3", "slow", None, None, 0),  # saturated target
        ("t4", "dispatching", "0", "fast", "dead", "4", 1),  # its lease ran out
        ("t5", "dispatching", "0", "fast", "alive", "9", 1),
        ("t6", "scheduled", "8", None, None, None, 0),  # not due yet
        ("t7", "scheduled", "6", None, None, None, 0),  # due within the claim-ahead window
        ("t8", "dispatching", "0", "fast", "alive", "5.5", 1),  # lease ends within it: not yet
    ]
    db.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", rows)
    sql, values = claim(
        "sqlite",
        now="5",
        due_by="6",
        lease_until="7",
        db_time=lambda value: value,
        columns=("id", "lease_owner", "lease_until", "attempts"),
    )
    claimed = db.execute(sql, values).fetchall()
    assert sorted(claimed) == [
        ("t2", "replica-a", "7", 1),
        ("t4", "replica-a", "7", 2),
        ("t7", "replica-a", "7", 1),
    ]
    sql, values = claim_sql.next_due("sqlite", saturated=["slow"])
    assert db.execute(sql, values).fetchall() == [("8", "3")]
