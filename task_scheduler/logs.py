"""Logging: one format for the service and uvicorn, text or JSON, with the request's id.

Every line carries ``request_id`` (``-`` outside a request), set by
:class:`task_scheduler.api.observe.ObserveRequests`, so the lines of one request can be
found together. Health probes and metric scrapes are access-logged at DEBUG: a probe every
few seconds would otherwise drown the log.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import datetime, timezone
from typing import Final

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
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
