"""The limits of what can be stored (domain.storable), pinned at their edges."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.storable import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_PROBLEMS,
    _cleaned,
    json_depth,
    parse_json,
    problems,
    require_storable,
    shown,
    storable,
    text_problem,
)


def nested(levels: int, inner: Any = "x") -> Any:
    """``levels`` levels counted as MariaDB's JSON_DEPTH does: objects, then ``inner``."""
    value = inner
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_depth_counts_every_level_and_stops_at_32():
    assert MAX_DEPTH == 32
    assert problems(nested(32)) == []
    [(path, reason)] = problems(nested(33))
    assert path == ("a",) * 32 and reason == "nested deeper than 32 levels"
    # An empty object or list is one level, as a value is.
    assert problems(nested(32, {})) == [] and problems(nested(32, [])) == []
    assert problems(nested(33, [])) != []


def test_a_list_counts_as_a_level_and_paths_name_indexes():
    value = [[["x", "\x00"]]]
    assert problems(value) == [((0, 0, 1), "contains a NUL character (\\u0000), which cannot be stored")]


def test_size_is_measured_as_utf8_json_up_to_64_kib():
    assert MAX_DOCUMENT_BYTES == 64 * 1024
    fits = "x" * (MAX_DOCUMENT_BYTES - 2)  # the quotes make it exactly the limit
    assert problems(fits) == []
    [(path, reason)] = problems(fits + "x")
    assert path == () and reason == f"{MAX_DOCUMENT_BYTES + 1} bytes as JSON; at most 65536 can be stored"
    assert problems("é" * (MAX_DOCUMENT_BYTES // 2)) != []  # two bytes each in UTF-8
    assert problems(fits + "x", max_bytes=None) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a\x00", "NUL"),
        ("\ud800", "surrogate"),
        ("x\udfffy", "surrogate"),
        ("\udbff\udc00", "surrogate"),  # a pair written as two escapes is still two halves
    ],
)
def test_unstorable_characters(text, reason):
    assert reason in text_problem(text)
    assert problems({"k": text}) == [(("k",), text_problem(text))]


def test_fine_text_and_numbers_pass():
    assert text_problem("\ud7ff\ue000 \U0001f916 \ufffd") is None
    assert problems({"n": 1e308, "m": -0.0, "i": 10**30, "b": True, "z": None}) == []


def test_keys_are_checked_and_shown_printable():
    assert problems({"\udfff": 1}) == [(("\ufffd",), text_problem("\udfff"))]
    assert problems({"a\x00": 1})[0][0] == ("a\ufffd",)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers(number):
    assert problems([number]) == [((0,), "NaN and Infinity are not JSON numbers and cannot be stored")]


def test_problems_are_in_document_order_and_bounded():
    value = {"a": "\x00", "b": ["\x00", "\x00"]}
    assert [path for path, _ in problems(value)] == [("a",), ("b", 0), ("b", 1)]
    assert MAX_PROBLEMS == 10 and len(problems(["\x00"] * 100)) == 10


def test_a_whole_body_can_skip_depth_and_size():
    assert problems(nested(500), max_depth=None, max_bytes=None) == []
    assert problems(nested(500, "\x00"), max_depth=None, max_bytes=None) != []


def test_require_storable_names_the_field():
    require_storable({"ok": 1}, ("metadata",))
    with pytest.raises(Invalid) as caught:
        require_storable({"a": "\x00"}, ("task", "body"))
    assert caught.value.problems == [(("task", "body", "a"), text_problem("\x00"))]


def test_storable_replaces_what_cannot_be_stored_and_says_so():
    value, note = storable({"s": "a\x00b\udfff", "n": [float("nan"), 1.5], "\x00": True})
    assert value == {"s": "a\ufffdb\ufffd", "n": ["nan", 1.5], "\ufffd": True}
    assert note == (
        "NaN and Infinity were kept as strings; characters that cannot be stored were replaced with U+FFFD"
    )
    assert storable({"fine": [1, "x"]}) == ({"fine": [1, "x"]}, None)


def test_storable_cuts_what_is_too_deep_to_a_storable_marker():
    value, note = storable(nested(100_000))
    assert problems(value) == []
    assert json.dumps(value).count("{") == MAX_DEPTH - 1
    assert "nested deeper than 32 levels" in json.dumps(value) and "left out" in note
    assert storable(nested(32)) == (nested(32), None)


def test_json_depth_skips_brackets_inside_strings():
    assert json_depth('{"a": "[[[{{{", "b": [1, "\\"]"]}') == 2
    assert json_depth("[[]]") == 2 and json_depth("7") == 0
    assert json_depth("[[], [], {}]") == 2  # siblings do not add up


def test_parse_json_refuses_an_answer_too_deep_before_parsing_it():
    with pytest.raises(ValueError, match="nested deeper than 32 levels"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert parse_json(json.dumps(nested(32)).encode()) == (nested(32), None)
    with pytest.raises(ValueError, match="nested deeper than 32 levels"):
        parse_json(json.dumps(nested(33)))
    with pytest.raises(ValueError):
        parse_json(b"not json")
    assert parse_json(b'{"a": NaN, "b": "\\u0000"}') == (
        {"a": "nan", "b": "\ufffd"},
        "NaN and Infinity were kept as strings; characters that cannot be stored were replaced with U+FFFD",
    )


def test_shown_keeps_a_good_value_and_repairs_a_bad_one():
    good = {"a": [1, "x"]}
    assert shown(good) is good
    assert shown({"a": "\udfff"}) == {"a": "\ufffd"}
    assert shown({"a": "\x00"}) == {"a": "\ufffd"}
    assert shown([float("inf")]) == ["inf"]
    assert problems(shown(nested(300))) == []
    assert shown(nested(32)) == nested(32) and problems(shown(nested(33))) == []
    assert shown({"text": "a literal \\u0000 is fine"}) == {"text": "a literal \\u0000 is fine"}


# -- the fast paths: an answer with nothing to change comes back as it is -----------------

_texts = st.text(alphabet=st.sampled_from(["a", "é", "\x00", "\ud800", "\\", '"', "u", "0", "e"]), max_size=6)
_leaves = st.none() | st.booleans() | st.integers() | st.floats() | _texts
_documents = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=40,
)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, allow_nan=True) == json.dumps(b, sort_keys=True, allow_nan=True)


@settings(max_examples=400, deadline=None)
@given(_documents)
def test_storable_without_copying_gives_what_the_full_walk_gives(value: Any) -> None:
    fast = storable(value)
    assert _same(fast[0], _cleaned(value)[0]) and fast[1] == _cleaned(value)[1]


@settings(max_examples=400, deadline=None)
@given(_documents)
def test_parse_json_without_copying_gives_what_the_full_walk_gives(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert _same(parse_json(text)[0], _cleaned(json.loads(text))[0])


@pytest.mark.parametrize(
    "text",
    [
        "1e999",
        "-1E400",
        "1.8e308",
        "1E+0309",
        "[1" + "1" * 400 + ".5]",
        "9" * 210 + "e99",
        "-" + "9" * 210 + ".5e99",
        '{"a": NaN}',
        '"\\u0000"',
    ],
)
def test_parse_json_repairs_numbers_and_escapes_that_plain_text_hides(text: str) -> None:
    assert parse_json(text)[1] is not None


def test_a_deep_answer_is_still_cut_when_its_brackets_are_many() -> None:
    value = nested(MAX_DEPTH + 2)
    assert storable(value)[1] is not None
