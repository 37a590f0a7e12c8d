"""One log format for the service and uvicorn, with the request's id; probes at DEBUG."""

from __future__ import annotations

import io
import json
import logging

import pytest

from task_scheduler import logs


@pytest.fixture
def stream(monkeypatch):
    """Configure logging into a buffer; restore the loggers touched afterwards."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", *logs.QUIET_LOGGERS)
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    buffer = io.StringIO()

    def configure(level: str, fmt: str) -> io.StringIO:
        logs.configure(level, fmt)
        handler = next(h for h in logging.getLogger().handlers if isinstance(h, logs._ServiceHandler))
        monkeypatch.setattr(handler, "stream", buffer)
        return buffer

    yield configure
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logs._ServiceHandler)]:
        root.removeHandler(handler)
    logging.getLogger("uvicorn.access").filters.clear()
    for name, (level, propagate) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = propagate


def access(path: str) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200
    )


def test_json_lines_carry_the_request_id_for_the_service_and_uvicorn(stream):
    buffer = stream("INFO", "json")
    token = logs.request_id.set("req-42")
    try:
        logging.getLogger("task_scheduler.services").info("rule %d created", 7)
        access("/rules?limit=5")
    finally:
        logs.request_id.reset(token)
    logging.getLogger("task_scheduler").warning("outside a request")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [(e["logger"], e["request_id"], e["level"]) for e in lines] == [
        ("task_scheduler.services", "req-42", "INFO"),
        ("uvicorn.access", "req-42", "INFO"),
        ("task_scheduler", "-", "WARNING"),
    ]
    assert lines[0]["message"] == "rule 7 created"
    assert lines[1]["message"] == '127.0.0.1:5000 - "GET /rules?limit=5 HTTP/1.1" 200'


def test_text_lines_have_one_format_for_everyone(stream):
    buffer = stream("INFO", "text")
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("task_scheduler").info("ready")
    lines = buffer.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO uvicorn.error [-] Started server process",
        "INFO task_scheduler [-] ready",
    ]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_are_logged_at_debug_only(stream, path):
    buffer = stream("INFO", "json")
    access(path)
    access("/rules")
    assert [json.loads(line)["message"].split()[3] for line in buffer.getvalue().splitlines()] == ["/rules"]

    buffer = stream("DEBUG", "json")
    buffer.truncate(0)
    buffer.seek(0)
    access(path)
    (entry,) = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert entry["level"] == "DEBUG" and path in entry["message"]
