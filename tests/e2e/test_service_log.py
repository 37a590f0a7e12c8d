"""The log of a real service process: one JSON format for the service and uvicorn, the
request's id on its lines, probes kept out at INFO."""

from __future__ import annotations

import json

import httpx
import pytest

from task_scheduler.testing.service_process import ServiceProcess

pytestmark = pytest.mark.e2e


def test_json_log_with_request_ids_and_quiet_probes(tmp_path):
    service = ServiceProcess(tmp_path, log_level="INFO", log_format="json")
    service.start()
    try:
        with httpx.Client(base_url=service.url, trust_env=False) as http:
            for _ in range(3):
                assert http.get("/healthz").status_code == 200
            answer = http.get("/rules", headers={"X-Request-ID": "from-the-dashboard"})
            assert answer.headers["x-request-id"] == "from-the-dashboard"
    finally:
        service.stop()
    entries = [json.loads(line) for line in service.log().splitlines()]
    loggers = {e["logger"] for e in entries}
    assert {"uvicorn.error", "uvicorn.access", "task_scheduler.app"} <= loggers
    (rules,) = [e for e in entries if e["logger"] == "uvicorn.access" and "/rules" in e["message"]]
    assert rules["request_id"] == "from-the-dashboard" and rules["level"] == "INFO"
    assert not [e for e in entries if "/healthz" in e["message"] or "/readyz" in e["message"]]
