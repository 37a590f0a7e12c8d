"""Paths inside a directory target, and path templates: pure checks, no file system.

A path a task names is relative and plain: no leading ``/``, no ``.`` or ``..`` segment,
no empty segment, no NUL. These checks keep a task's text inside its directory; the
transport (``transports.file``) also refuses every symbolic link on the way, which text
alone cannot see.

A template puts the occurrence's time (UTC) into a path with ``{scheduled_at:FORMAT}``,
FORMAT being a ``strftime`` format, so that an hourly copy does not overwrite the last.
No other field, attribute or conversion is accepted.
"""

from __future__ import annotations

import string
from datetime import datetime, timezone
from typing import Final

FIELD: Final = "scheduled_at"
MAX_SEGMENT: Final = 255
_SAMPLE: Final = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_FORMATTER: Final = string.Formatter()


def segments(path: str) -> list[str]:
    """The segments of a relative path that stays inside its directory, or ``ValueError``."""
    if "\x00" in path:
        raise ValueError("a path may not contain NUL")
    if not path:
        raise ValueError("the path is empty")
    if path.startswith("/"):
        raise ValueError("the path must be relative to the directory (no leading /)")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError("the path may not contain empty, '.' or '..' segments")
        if len(part.encode()) > MAX_SEGMENT:
            raise ValueError(f"a path segment is longer than {MAX_SEGMENT} bytes")
    return parts


def _pieces(template: str) -> list[tuple[str, str | None]]:
    """(literal text, strftime format or None) pairs, or ``ValueError``."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as error:
        raise ValueError(f"not a valid template: {error}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        if field != FIELD or conversion is not None:
            raise ValueError(f"the only field is {{{FIELD}:FORMAT}}, e.g. {{{FIELD}:%Y%m%dT%H%M}}")
        if not spec or "{" in spec or "}" in spec:
            raise ValueError(f"give {{{FIELD}}} a strftime format, e.g. {{{FIELD}:%Y%m%dT%H%M}}")
        pieces.append((literal, spec))
    return pieces


def render(template: str, scheduled_at: datetime) -> str:
    """The path for one occurrence (its time in UTC), checked by :func:`segments`."""
    when = scheduled_at.astimezone(timezone.utc)
    path = "".join(literal + (when.strftime(spec) if spec else "") for literal, spec in _pieces(template))
    segments(path)
    return path


def check_template(template: str) -> str:
    """``template`` when it is valid and renders to a safe path, else ``ValueError``."""
    render(template, _SAMPLE)
    return template
