"""Named parameters in admin-written SQL, and query results as JSON: pure, no driver.

A query names its parameters ``:name`` (letters, digits, underscore; not starting with a
digit). The scanner skips what is not SQL code: ``'...'`` strings, ``"..."`` and
```...``` identifiers, ``--`` and ``/* */`` comments (``#`` too on MySQL), PostgreSQL
``$tag$...$tag$`` bodies and ``::`` casts, so ``:days::int`` is the parameter ``days``
cast to int. A ``:name`` inside a ``'...'`` string is refused rather than silently left
alone (write ``'a:' || 'b'`` to mean the text). One statement per query: a ``;`` may only
end it.

Each driver gets its own placeholders: ``$1`` (asyncpg), ``?1`` (SQLite), ``%s``
(asyncmy, which formats with ``%``, so every other ``%`` is doubled).
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

Dialect = Literal["postgres", "mysql", "sqlite"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IN_LITERAL = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
BYTES_INLINE = 1024
"""Binary values up to this size are kept (base64); larger ones by their length only."""


class SqlError(ValueError):
    """The SQL cannot be used as a configured query; the message says where and why."""


@dataclass(frozen=True)
class Statement:
    """A query split at its parameters: ``texts[i]`` comes before ``names[i]``."""

    texts: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def parameters(self) -> tuple[str, ...]:
        """Each parameter once, in order of first use."""
        return tuple(dict.fromkeys(self.names))

    def render(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        """The SQL in the driver's placeholders, and the parameter names in argument order."""
        if dialect == "mysql":
            parts = [self.texts[0].replace("%", "%%")]
            for text in self.texts[1:]:
                parts += ["%s", text.replace("%", "%%")]
            return "".join(parts), self.names
        order = self.parameters
        mark = "$" if dialect == "postgres" else "?"
        parts = [self.texts[0]]
        for name, text in zip(self.names, self.texts[1:], strict=True):
            parts += [f"{mark}{order.index(name) + 1}", text]
        return "".join(parts), order

    def arguments(self, dialect: Dialect, params: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SQL for ``dialect`` and its arguments taken from ``params``."""
        text, order = self.render(dialect)
        return text, [params[name] for name in order]


def _quoted_end(sql: str, start: int, backslash: bool) -> int:
    """The index just past the quoted text opening at ``start`` (doubled quotes escape)."""
    quote, i = sql[start], start + 1
    while i < len(sql):
        char = sql[i]
        if backslash and char == "\\":
            i += 2
        elif char == quote:
            if sql.startswith(quote, i + 1):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise SqlError(f"a {quote} opened at character {start + 1} is never closed")


def parse(sql: str, dialect: Dialect) -> Statement:
    """Split ``sql`` at its ``:name`` parameters, or raise :class:`SqlError`."""
    texts: list[str] = []
    names: list[str] = []
    start = i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"`":
            escapes = dialect == "mysql" or (dialect == "postgres" and sql[i - 1 : i] in ("e", "E"))
            end = _quoted_end(sql, i, escapes and char != "`")
            inside = _IN_LITERAL.search(sql, i + 1, end - 1) if char == "'" else None
            if inside:
                raise SqlError(
                    f"':{inside.group(1)}' is inside a string literal, where it is not a parameter;"
                    " put the parameter outside the quotes"
                )
            i = end
        elif sql.startswith("--", i) or (char == "#" and dialect == "mysql"):
            newline = sql.find("\n", i)
            i = len(sql) if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise SqlError(f"a comment opened at character {i + 1} is never closed")
            i = close + 2
        elif char == "$" and dialect == "postgres" and (tag := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(tag.group(0), tag.end())
            if close < 0:
                raise SqlError(f"a {tag.group(0)} body opened at character {i + 1} is never closed")
            i = close + len(tag.group(0))
        elif sql.startswith("::", i):
            i += 2
        elif char == ":" and (name := _NAME.match(sql, i + 1)):
            texts.append(sql[start:i])
            names.append(name.group(0))
            start = i = name.end()
        elif char == ";":
            if sql[i + 1 :].strip():
                raise SqlError("one statement per query: a ';' may only end it")
            i += 1
        else:
            i += 1
    texts.append(sql[start:])
    if not "".join(texts).strip(" \t\r\n;"):
        raise SqlError("the query is empty")
    return Statement(tuple(texts), tuple(names))


def jsonable(value: Any) -> Any:
    """A database value as JSON can carry it: times in ISO 8601, decimals and UUIDs as
    text (exactly), binary as base64 (or its length when large), anything else as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) > BYTES_INLINE:
            return {"bytes": len(data)}
        return {"base64": base64.b64encode(data).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return str(value)


def read_result(columns: list[str], rows: list[Any], max_rows: int, max_bytes: int) -> dict[str, Any]:
    """What a read keeps in its run: at most ``max_rows`` rows (``rows`` may hold one more,
    to tell that there were more) and no more than ``max_bytes`` of JSON in all."""
    kept = [[jsonable(value) for value in row] for row in rows[:max_rows]]
    truncated = len(rows) > max_rows

    def result() -> dict[str, Any]:
        return {"columns": columns, "rows": kept, "row_count": len(kept), "truncated": truncated}

    size = len(json.dumps(result(), ensure_ascii=False, separators=(",", ":")).encode())
    while kept and size > max_bytes:
        dropped = kept.pop()
        size -= len(json.dumps(dropped, ensure_ascii=False, separators=(",", ":")).encode()) + 1
        truncated = True
    return result()
