"""Named parameters in configured SQL, their translation per driver, and results as JSON."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from task_scheduler.domain import targets
from task_scheduler.domain.sql import SqlError, jsonable, parse, read_result
from task_scheduler.domain.targets import DatabaseTarget


def test_parameters_in_order_of_first_use_and_translated_per_driver():
    statement = parse("SELECT * FROM t WHERE a = :a AND b > :b OR a < :a", "postgres")
    assert statement.parameters == ("a", "b")
    assert statement.render("postgres") == ("SELECT * FROM t WHERE a = $1 AND b > $2 OR a < $1", ("a", "b"))
    assert statement.render("sqlite")[0] == "SELECT * FROM t WHERE a = ?1 AND b > ?2 OR a < ?1"
    text, order = parse("SELECT 1 WHERE a = :a AND b LIKE 'x%' OR a < :a", "mysql").render("mysql")
    assert text == "SELECT 1 WHERE a = %s AND b LIKE 'x%%' OR a < %s" and order == ("a", "a")


def test_arguments_follow_the_placeholders():
    statement = parse("UPDATE t SET x = :x WHERE id = :id AND x <> :x", "mysql")
    assert statement.arguments("mysql", {"id": 7, "x": "v"})[1] == ["v", 7, "v"]
    assert statement.arguments("postgres", {"id": 7, "x": "v"})[1] == ["v", 7]


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "col:x" FROM t',
        "SELECT 1 -- :x\n",
        "SELECT 1 /* :x */",
        "SELECT $$ :x $$",
        "SELECT :y::int, '12:30'",
    ],
)
def test_what_is_not_code_holds_no_parameters(sql):
    names = parse(sql, "postgres").parameters
    assert names == (("y",) if ":y" in sql else ())


def test_a_parameter_inside_a_string_literal_is_refused():
    with pytest.raises(SqlError, match="inside a string literal"):
        parse("SELECT 'x:name' AS t", "postgres")


def test_quotes_escape_the_way_each_database_does():
    assert parse("SELECT 'it''s', :a", "sqlite").parameters == ("a",)
    assert parse("SELECT 'it\\'s', :a", "mysql").parameters == ("a",)
    assert parse("SELECT E'it\\'s', :a", "postgres").parameters == ("a",)
    with pytest.raises(SqlError, match="never closed"):
        parse("SELECT 'it\\'s', :a", "postgres")  # standard strings: the backslash is text


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM t; DROP TABLE t", "one statement"),
        ("SELECT 'open", "never closed"),
        ("SELECT /* open", "never closed"),
        ("  ; ", "empty"),
    ],
)
def test_unusable_sql_is_refused(sql, reason):
    with pytest.raises(SqlError, match=reason):
        parse(sql, "sqlite")
    assert parse("DELETE FROM t;  ", "sqlite").parameters == ()


def test_values_become_json():
    when = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    assert jsonable(when) == "2026-01-05T12:00:00+00:00"
    assert jsonable(Decimal("1.10")) == "1.10"
    assert jsonable(b"\x00\x01") == {"base64": "AAE="}
    assert jsonable(b"x" * 5000) == {"bytes": 5000}
    assert jsonable(float("nan")) == "nan"


def test_a_read_keeps_max_rows_and_fits_the_size_limit():
    rows = [(i, "x" * 100) for i in range(10)]
    assert read_result(["id", "text"], rows, 3, 1 << 20)["row_count"] == 3
    assert read_result(["id", "text"], rows, 3, 1 << 20)["truncated"] is True
    assert read_result(["id", "text"], rows[:3], 3, 1 << 20)["truncated"] is False
    small = read_result(["id", "text"], rows, 10, 500)
    assert small["truncated"] is True and 0 < small["row_count"] < 10


QUERIES = {"q": {"sql": "SELECT :a", "mode": "read"}}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://u:hunter2@db/x", "password does not belong"),
        ("oracle://db/x", "scheme"),
        ("sqlite://relative.db", "absolute"),
        ("postgres://u@db", "name the database"),
    ],
)
def test_database_urls_are_checked(url, reason):
    with pytest.raises(ValueError, match=reason) as raised:
        DatabaseTarget(url=url, queries=QUERIES)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("url", ["sqlite:///var/lib/site/jobs.db", "sqlite:////var/lib/site/jobs.db"])
def test_three_and_four_slashes_name_the_same_sqlite_file(url):
    assert targets.sqlite_file(DatabaseTarget(url=url, queries=QUERIES).url) == "/var/lib/site/jobs.db"


def test_a_missing_driver_is_named_when_the_target_is_made(monkeypatch):
    monkeypatch.setitem(targets.DRIVERS, "postgres", ("no_such_driver_module", "postgres"))
    with pytest.raises(ValueError, match=r"rmf-task-scheduler\[postgres\]"):
        DatabaseTarget(url="postgres://u@db/x", queries=QUERIES)


def test_a_query_that_does_not_parse_is_refused_with_its_name():
    with pytest.raises(ValueError, match="query 'bad'"):
        DatabaseTarget(
            url="sqlite:///tmp/x.db", queries={"bad": {"sql": "SELECT 1; SELECT 2", "mode": "read"}}
        )
