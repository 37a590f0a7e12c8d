"""Keep credentials out of text that others read: log lines and the answers kept in runs.

Two kinds of redaction, both pure. Patterns catch credentials by their shape wherever they
appear (a ``?token=`` query, an ``Authorization`` header, ``Bearer ...``, a JWT, a
``"token": "..."`` field). Known secrets (a target's token, password, secret header
values) are caught by their value, in the forms a server is likely to echo them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

from pydantic import BaseModel

REDACTED: Final = "[redacted]"
MIN_SECRET_LENGTH: Final = 4
"""Shorter secret values are not replaced by value: they would blank out ordinary text."""

_PATTERNS: Final = (
    # A token in a URL's query: /events?token=...
    (re.compile(r"([?&](?:access_)?token=)[^&\s\"'#]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    # A header line or mapping entry: "Authorization: Bearer x", 'authorization': 'Basic x'.
    (
        re.compile(r"(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*(?:b?[\"'])?)[^\"'\r\n,}]+", re.IGNORECASE),
        rf"\g<1>{REDACTED}",
    ),
    # A header as a pair: ("authorization", "Bearer x"), (b'authorization', b'Bearer x').
    (
        re.compile(r"(\b(?:proxy-)?authorization[\"'],\s*b?[\"'])[^\"']+", re.IGNORECASE),
        rf"\g<1>{REDACTED}",
    ),
    # "Bearer <token>" in running text; eight characters at least, so "a bearer of news" stays.
    (re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE), rf"\g<1> {REDACTED}"),
    # A token field: {"type": "auth", "token": "..."}, 'access_token': '...'.
    (
        re.compile(r"([\"'](?:access_|refresh_)?token[\"']\s*:\s*[\"'])[^\"']+", re.IGNORECASE),
        rf"\g<1>{REDACTED}",
    ),
    # A JWT anywhere: its header and claims are base64 JSON, so both begin "eyJ".
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
)
_PATTERN_WORDS: Final = ("token", "authorization", "bearer", "basic", "eyj")
"""A word every pattern needs, lower-cased: text without one skips them (most of a fleet's answer)."""
_ANY_PATTERN: Final = re.compile("|".join(_PATTERN_WORDS), re.IGNORECASE)


def _has_pattern_word(text: str) -> bool:
    """Whether ``text`` holds one of :data:`_PATTERN_WORDS`, in any case. ASCII text (every
    JSON encoding) is lower-cased and searched, ten times faster than the regex; other text
    goes to the regex, whose case rules reach beyond ASCII (the long s, U+017F, matches ``s``)."""
    if text.isascii():
        lowered = text.lower()
        return any(word in lowered for word in _PATTERN_WORDS)
    return _ANY_PATTERN.search(text) is not None


def secret_forms(values: Iterable[str]) -> list[str]:
    """Each secret as sent and as commonly echoed back: URL-encoded, JSON-escaped, base64;
    longest first, so a longer form is replaced whole before a shorter one inside it."""
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            continue
        raw = value.encode()
        forms |= {
            value,
            quote(value, safe=""),
            json.dumps(value)[1:-1],
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
        }
    return sorted(forms, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by :data:`REDACTED`; ``secrets`` come from
    :func:`secret_forms`."""
    for form in secrets:
        text = text.replace(form, REDACTED)
    if not _has_pattern_word(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-like value (a fleet's answer) with every string in it redacted, keys included.
    One JSON encoding tells whether any string needs it: nearly every answer comes back as
    it is, without a copy."""
    secrets = list(secrets)
    if isinstance(value, (Mapping, list, tuple)) and not _may_need_redacting(value, secrets):
        return value
    return _redacted(value, secrets)


def _redacted(value: Any, secrets: list[str]) -> Any:
    """:func:`redact` by walking and copying the whole value."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {redact_text(str(k), secrets): _redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item, secrets) for item in value]
    return value


def _may_need_redacting(value: Any, secrets: list[str]) -> bool:
    """False when no string in ``value`` holds a secret's form or a pattern's word. Every
    string is in its JSON text, escaped character by character: a form inside a string is
    in the text as its JSON-escaped form, which :func:`secret_forms` includes."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return True
    return _has_pattern_word(text) or any(form in text for form in secrets)


def secret_values(config: BaseModel | None) -> list[str]:
    """The values of a target's secret fields (its model's ``secret_fields``): strings, and
    the values of mappings such as ``secret_headers``."""
    values: list[str] = []
    for name in getattr(config, "secret_fields", ()):
        value = getattr(config, name, None)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, Mapping):
            values.extend(v for v in value.values() if isinstance(v, str))
    return values
