"""Credentials kept out of log lines and run answers: pure redaction, and the logging filter."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.domain.redaction import (
    _ANY_PATTERN,
    MIN_SECRET_LENGTH,
    REDACTED,
    _has_pattern_word,
    _redacted,
    redact,
    redact_text,
    secret_forms,
    secret_values,
)
from task_scheduler.domain.targets import DatabaseTarget, HttpTarget, RmfWsTarget
from task_scheduler.logs import RedactSecrets, install, redacting

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/events?token=abc.def&channel=x", "/events?token=[redacted]&channel=x"),
        ("/x?a=1&access_token=abc", "/x?a=1&access_token=[redacted]"),
        ("> Authorization: Bearer abc", "> Authorization: [redacted]"),
        ("< authorization: Basic dXNlcjpwdw==", "< authorization: [redacted]"),
        ("{'Authorization': 'Bearer abc', 'Accept': 'x'}", "{'Authorization': '[redacted]', 'Accept': 'x'}"),
        ('[("authorization", "Bearer abc")]', '[("authorization", "[redacted]")]'),
        ("[(b'authorization', b'Bearer abc')]", "[(b'authorization', b'[redacted]')]"),
        ("sent Bearer abc-1234 to it", "sent Bearer [redacted] to it"),
        ('{"type": "auth", "token": "abc"}', '{"type": "auth", "token": "[redacted]"}'),
        ("{'access_token': 'abc'}", "{'access_token': '[redacted]'}"),
        (f"the token {JWT} expired", "the token [redacted] expired"),
        ("a tokenizer=4 and a bearer of news", "a tokenizer=4 and a bearer of news"),
    ],
)
def test_credentials_are_found_by_their_shape(text, expected):
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # redacting twice changes nothing more


def test_known_secrets_are_replaced_as_sent_and_as_commonly_echoed():
    secret = 'p@ss/w"rd'
    forms = secret_forms([secret, "abc"])
    assert "abc" not in forms and len("abc") < MIN_SECRET_LENGTH == 4
    assert forms == sorted(forms, key=len, reverse=True)
    for echoed in (secret, "p%40ss%2Fw%22rd", 'p@ss/w\\"rd', "cEBzcy93InJk"):
        assert redact_text(f"<{echoed}>", forms) == f"<{REDACTED}>", echoed


def test_an_answer_is_redacted_through_and_through_keys_included():
    forms = secret_forms(["k3y-value"])
    answer = {"headers": {"X-Api-Key": "k3y-value", "k3y-value": 1}, "list": ["Bearer k3y-value", 7, None]}
    assert redact(answer, forms) == {
        "headers": {"X-Api-Key": REDACTED, REDACTED: 1},
        "list": [f"Bearer {REDACTED}", 7, None],
    }
    assert redact("plain k3y-value", forms) == f"plain {REDACTED}"
    assert redact(12, forms) == 12


def test_a_targets_secret_values_are_its_secret_fields():
    http = HttpTarget(base_url="http://h", token="tok1", secret_headers={"X-Key": "v1", "X-Other": "v2"})
    assert sorted(secret_values(http)) == ["tok1", "v1", "v2"]
    assert secret_values(RmfWsTarget(url="ws://h/ws", jwt_secret="shh")) == ["shh"]
    database = DatabaseTarget(
        url="sqlite:////tmp/x.sqlite3", password="pw", queries={"q": {"sql": "SELECT 1", "mode": "read"}}
    )
    assert secret_values(database) == ["pw"]
    assert secret_values(None) == []


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_the_log_filter_cleans_arguments_and_keeps_them_for_formatters_that_read_them():
    record = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/events?token=abc", "1.1", 101)
    assert RedactSecrets().filter(record) is True
    assert record.args == ("127.0.0.1:5", "GET", "/events?token=[redacted]", "1.1", 101)


def test_the_log_filter_cleans_a_credential_split_over_arguments():
    record = _record("> %s: %s", "Authorization", "Digest abc")
    RedactSecrets().filter(record)
    assert record.getMessage() == "> Authorization: [redacted]" and not record.args
    mapping = _record("%(url)s", {"url": "/events?token=abc"})
    RedactSecrets().filter(mapping)
    assert mapping.getMessage() == "/events?token=[redacted]"


def test_install_puts_one_filter_on_each_library_logger():
    install()
    install()
    for name in ("uvicorn.access", "uvicorn.error", "websockets.client", "websockets.server"):
        assert sum(isinstance(f, RedactSecrets) for f in logging.getLogger(name).filters) == 1
    assert redacting("websockets.client") is logging.getLogger("websockets.client")


_words = st.sampled_from(["x", "é", "s3cret!", "Bearer abcdefghij", "token", '"', "\\", "/", JWT[:20]])
_strings = st.lists(_words, max_size=3).map("".join)
_answers = st.recursive(
    st.none() | st.integers() | _strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strings, inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_answers, st.sampled_from([[], ["s3cret!"], ["é/é/", 's"cr\\t']]))
def test_an_answer_is_redacted_as_by_walking_it_whole(answer: object, secrets: list[str]) -> None:
    forms = secret_forms(secrets)
    assert redact(answer, forms) == _redacted(answer, forms)


_cased = st.lists(
    st.sampled_from(
        [
            "ToKeN",
            "AUTHORIZATION",
            "bearer",
            "Basic",
            "EYJ",
            "ba",
            "\u017f",
            "ic",
            "author\u0131",
            "zation",
            "x",
        ]
    ),
    max_size=4,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_cased | st.text(max_size=40))
def test_the_pattern_word_check_is_the_case_blind_regexs(text: str) -> None:
    # Its ASCII fast path must agree with the regex, which also matches "ba\u017fic" (long s).
    assert _has_pattern_word(text) == (_ANY_PATTERN.search(text) is not None)
