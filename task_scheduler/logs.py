"""Logging: one format for the service and uvicorn, text or JSON, with the request's id,
and no credentials.

Every line carries ``request_id`` (``-`` outside a request), set by
:class:`task_scheduler.api.observe.ObserveRequests`, so the lines of one request can be
found together. Health probes and metric scrapes are access-logged at DEBUG: a probe every
few seconds would otherwise drown the log.

Libraries write what they see: uvicorn's access and websocket lines carry the URL (and so
``/events?token=``), and at DEBUG the websocket libraries print every header
(``Authorization``) and frame. :class:`RedactSecrets` rewrites such records before any
handler sees them: it is on the service's handler (:func:`configure`) and on those
libraries' loggers (:func:`install`, which the app factory calls).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from task_scheduler.domain.redaction import redact_text

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

QUIET_LOGGERS: Final = ("tortoise.db_client", "aiosqlite", "asyncmy")
"""Database drivers whose DEBUG lines carry SQL parameters, which may hold targets' secrets
(passwords, tokens): they log at INFO at most, whatever ``log_level`` says."""

PROBE_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _ProbesAtDebug(logging.Filter):
    """uvicorn's access line for a probe is logged at DEBUG (dropped when DEBUG is off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and str(args[2]).split("?", 1)[0] in PROBE_PATHS:
            if not logging.getLogger().isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


LIBRARY_LOGGERS: Final = ("uvicorn.access", "uvicorn.error", "websockets.client", "websockets.server")
"""Loggers whose records show URLs, headers or frames; uvicorn's websocket servers log
through ``uvicorn.error``."""


def _clean(arg: Any) -> Any:
    return redact_text(arg) if isinstance(arg, str) else arg


class RedactSecrets(logging.Filter):
    """Replaces credentials in a record's message and arguments by ``[redacted]``.

    Arguments are cleaned one by one first, so filters and formatters that read them
    (uvicorn's access line) keep working; when the assembled line still holds a credential
    (a header's name and value in two arguments) the record becomes that line, cleaned,
    without arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _clean(value) for key, value in record.args.items()}
        try:
            line = record.getMessage()
        except Exception:  # a malformed record: logging reports it, not this filter
            return True
        clean = redact_text(line)
        if clean != line:
            record.msg, record.args = clean, None
        return True


def redacting(name: str) -> logging.Logger:
    """The logger ``name``, with :class:`RedactSecrets` on it (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
    return logger


def install() -> None:
    """Put :class:`RedactSecrets` on the libraries' loggers that see URLs and headers, so
    their records are clean whatever handler receives them (a test's capture included)."""
    for name in LIBRARY_LOGGERS:
        redacting(name)


class _ServiceHandler(logging.StreamHandler):
    """The service's own handler, told apart from others (a test's capture) when replaced."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, request_id, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Send every logger, uvicorn's included, through one handler on the root logger."""
    handler = _ServiceHandler()
    handler.addFilter(_RequestId())
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ServiceHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    access.filters = [f for f in access.filters if not isinstance(f, _ProbesAtDebug)]
    access.addFilter(_ProbesAtDebug())
    install()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
