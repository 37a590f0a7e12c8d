"""Fuzz the whole OpenAPI surface of a running service with schemathesis.

The service runs as a process on SQLite (and on PostgreSQL when it is there); schemathesis
generates valid and invalid requests for every operation from ``/openapi.json``. Any 5xx, or
a response that does not match the documented status codes, content type or schema, fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_scheduler.testing.service_process import ServiceProcess
from tests.databases import clean_database

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path: Path) -> Iterator[ServiceProcess]:
    db_url = asyncio.run(clean_database(request.param, tmp_path))
    nowhere = {"kind": "rmf_http", "base_url": "http://127.0.0.1:9", "timeout_s": 1.0}
    process = ServiceProcess(tmp_path, db_url=db_url, targets={"default": nowhere})
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_no_operation_answers_5xx_or_off_its_documented_schema(service, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "1",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
