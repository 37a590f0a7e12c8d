"""What the databases can hold: the limits every stored free-form value is checked against.

PostgreSQL refuses a NUL character in text and JSON, and NaN or Infinity in JSON; no
database can hold a lone UTF-16 surrogate (``"\\udfff"``), and no JSON encoder writes one;
a document nested hundreds deep is stored but cannot be serialised again. So free-form
input (metadata, task documents, bodies, names) is checked here before anything is
written, and a remote answer is made storable (:func:`storable`) before it goes into a run.
The walks are iterative: a hostile depth cannot exhaust the stack.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final

from task_scheduler.domain.errors import Invalid

MAX_DEPTH: Final = 32
"""The most levels a stored JSON document may have, counted as MariaDB's ``JSON_DEPTH`` does
and limited as MariaDB limits them: a value alone is 1, ``{"a": [1]}`` is 3."""
MAX_DOCUMENT_BYTES: Final = 64 * 1024
"""The largest a stored free-form document (metadata, a task's body) may be, as UTF-8 JSON."""
MAX_PROBLEMS: Final = 10
"""The most problems one check reports: enough to act on, bounded for a hostile input."""

Path = tuple[str | int, ...]
Problems = list[tuple[Path, str]]

_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")
NUL_REASON: Final = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_REASON: Final = "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
NON_FINITE_REASON: Final = "NaN and Infinity are not JSON numbers and cannot be stored"
TOO_DEEP_REASON: Final = f"nested deeper than {MAX_DEPTH} levels"
REPLACEMENT: Final = "\ufffd"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    found = _UNSTORABLE_CHAR.search(text)
    if found is None:
        return None
    return NUL_REASON if found.group() == "\x00" else SURROGATE_REASON


def printable(text: str) -> str:
    """``text`` with what cannot be stored or encoded replaced by U+FFFD (for paths in errors)."""
    return _UNSTORABLE_CHAR.sub(REPLACEMENT, text)


def _walk(value: Any, max_depth: int | None) -> Iterator[tuple[Path, int, Any]]:
    """Every value inside ``value`` (keys as strings too, at their object's depth), in
    document order, with its path and depth (the root's is 0); nothing at ``max_depth`` or
    deeper is entered."""
    stack: list[tuple[Path, int, Any]] = [((), 0, value)]
    while stack:
        path, depth, item = stack.pop()
        yield path, depth, item
        if max_depth is not None and depth >= max_depth:
            continue
        if isinstance(item, dict):
            for key, inner in reversed(item.items()):
                where = (*path, printable(str(key)))
                stack.append((where, depth + 1, inner))
                stack.append((where, depth, str(key)))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*path, i), depth + 1, item[i]) for i in range(len(item) - 1, -1, -1))


def problems(
    value: Any, *, max_depth: int | None = MAX_DEPTH, max_bytes: int | None = MAX_DOCUMENT_BYTES
) -> Problems:
    """Why ``value`` (a JSON document) cannot be stored, each with where it is; empty when it can.

    ``max_depth`` and ``max_bytes`` None leave depth and size to the caller (a request
    body as a whole is bounded by its parser and the service's ``max_body_bytes``)."""
    found: Problems = []
    for path, depth, item in _walk(value, max_depth):
        reason = None
        if isinstance(item, str):
            reason = text_problem(item)
        elif isinstance(item, float) and not math.isfinite(item):
            reason = NON_FINITE_REASON
        if max_depth is not None and depth >= max_depth:
            reason = TOO_DEEP_REASON
        if reason is not None:
            found.append((path, reason))
            if len(found) == MAX_PROBLEMS:
                break
    if not found and max_bytes is not None:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > max_bytes:
            found.append(((), f"{size} bytes as JSON; at most {max_bytes} can be stored"))
    return found


def require_storable(value: Any, field: Path) -> None:
    """Raise :class:`Invalid` naming each place in the document at ``field`` that cannot be
    stored (see :func:`problems`)."""
    found = problems(value)
    if found:
        raise Invalid([((*field, *path), reason) for path, reason in found])


def shown(value: Any) -> Any:
    """A stored value as it can be shown: itself, or, for a row written before these limits
    (or by hand), a copy made storable by :func:`storable`, so one bad row never breaks a
    listing. The common case costs one JSON encoding."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode()  # a lone surrogate cannot be encoded
    except TypeError:
        return value  # not a JSON document: nothing of this module's concern
    except (ValueError, RecursionError):
        return storable(value)[0]
    if "\\u0000" in text or json_depth(text) >= MAX_DEPTH:
        return storable(value)[0]
    return value


def storable(value: Any) -> tuple[Any, str | None]:
    """A remote answer made storable, and a note saying what was changed (None if nothing).

    Unstorable characters become U+FFFD, NaN and Infinity become strings, and an object or
    list whose content would be deeper than :data:`MAX_DEPTH` is replaced by a marker string.
    An answer with none of these (nearly every one) is returned as it is, after one JSON
    encoding to tell."""
    if _fine_as_is(value):
        return value, None
    return _cleaned(value)


def _cleaned(value: Any) -> tuple[Any, str | None]:
    """:func:`storable` by walking and copying the whole value."""
    notes: set[str] = set()

    def clean_text(text: str) -> str:
        reason = text_problem(text)
        if reason is None:
            return text
        notes.add("characters that cannot be stored were replaced with U+FFFD")
        return printable(text)

    def clean(item: Any, depth: int) -> Any:
        if isinstance(item, str):
            return clean_text(item)
        if isinstance(item, float) and not math.isfinite(item):
            notes.add("NaN and Infinity were kept as strings")
            return str(item)
        if isinstance(item, (dict, list)) and item and depth >= MAX_DEPTH - 1:
            notes.add(f"parts {TOO_DEEP_REASON} were left out")
            return f"… ({TOO_DEEP_REASON})"
        return item

    # Iterative copy: each container is rebuilt from its cleaned children, depth-first.
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        item, parent, slot, depth = stack.pop()
        item = clean(item, depth)
        if isinstance(item, dict):
            copy: Any = {}
            for key, inner in item.items():
                name = clean_text(str(key))
                copy[name] = None  # keeps the order; the child fills it in
                stack.append((inner, copy, name, depth + 1))
        elif isinstance(item, list):
            copy = [None] * len(item)
            stack.extend((inner, copy, index, depth + 1) for index, inner in enumerate(item))
        else:
            copy = item
        parent[slot] = copy
    return root[0], "; ".join(sorted(notes)) or None


def parse_json(raw: str | bytes) -> tuple[Any, str | None]:
    """A remote answer parsed without risk, made storable: (the value, a note on what
    :func:`storable` changed, or None). ValueError says why it is not usable JSON.

    Depth is measured before parsing, so an answer nested 100,000 deep is refused instead
    of exhausting the parser's recursion."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    if _shallow(text):
        if _plain_text(text):
            try:
                return _FINITE.decode(text), None  # nothing in it that storable() would change
            except _NotFinite:
                pass
    elif json_depth(text) >= MAX_DEPTH:
        raise ValueError(f"the JSON is {TOO_DEEP_REASON}")
    return storable(json.loads(text))


def _plain_text(text: str) -> bool:
    """Whether ``text`` holds no unstorable character, raw or escaped (any ``\\u`` escape is
    looked at): plain substring searches, several times faster than one regex over it."""
    if "\\u" in text or "\x00" in text:
        return False
    return text.isascii() or _UNSTORABLE_CHAR.search(text) is None


class _NotFinite(Exception):
    """A number in the text parses to NaN or infinity (``NaN``, ``1e999``)."""


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise _NotFinite(literal)
    return number


def _not_finite(literal: str) -> float:
    raise _NotFinite(literal)


_FINITE = json.JSONDecoder(parse_float=_finite_float, parse_constant=_not_finite)
"""Parses JSON, stopping at a non-finite number (``NaN``, ``1e999``, a 309-digit ``1…1.5``):
told while parsing, as only a number with a point or an exponent goes through
:func:`_finite_float`."""


def _shallow(text: str) -> bool:
    """True when ``text`` has too few brackets to nest anywhere near :data:`MAX_DEPTH`, which
    is cheaper to count than the nesting (strings included, so it may say False wrongly,
    never True)."""
    return text.count("[") + text.count("{") < MAX_DEPTH - 1


def _fine_as_is(value: Any) -> bool:
    """Whether :func:`storable` would change nothing in ``value``, told from one JSON encoding
    (a string from its characters)."""
    if isinstance(value, str):
        return _UNSTORABLE_CHAR.search(value) is None
    if not isinstance(value, (dict, list)):
        return not isinstance(value, float) or math.isfinite(value)
    return storable_json(value) is not None


def storable_json(value: Any) -> str | None:
    """``value``'s compact JSON text when :func:`storable` would change nothing in it, else
    None: one encoding both tells and, for a caller that needs the size, measures."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    # ASCII text (most answers) holds no surrogate, and NUL only escaped: no regex to run.
    fine = (text.isascii() or _UNSTORABLE_CHAR.search(text) is None) and "\\u0000" not in text
    return text if fine and (_shallow(text) or json_depth(text) < MAX_DEPTH) else None


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_depth(text: str) -> int:
    """How deep the brackets of JSON text nest (strings skipped), without parsing it. A value
    inside the innermost brackets is one level more, so :data:`MAX_DEPTH` brackets are too deep."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif mark in "]}":
            depth -= 1
    return deepest
