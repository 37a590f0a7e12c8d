"""Fuzz the whole OpenAPI surface of a running service with schemathesis.

The service runs as a process on SQLite (and on PostgreSQL when it is there), with
authentication off, and once more on SQLite with it on and an admin's token on every
request; schemathesis generates valid and invalid requests for every operation from
``/openapi.json``. Any 5xx, or a response that does not match the documented status codes,
content type or schema, fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
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
ADMIN = {"username": "root", "password": "fuzzing admin password"}
AUTH_ON = {
    "auth_enabled": True,
    "auth_jwt_secret": "a-secret-for-fuzzing-only-0123456789abcdef",
    "auth_admin_username": ADMIN["username"],
    "auth_admin_password": ADMIN["password"],
}


@pytest.fixture(params=["sqlite", "postgres", "sqlite-auth"])
def service(request, tmp_path: Path) -> Iterator[tuple[ServiceProcess, list[str]]]:
    db_url = asyncio.run(clean_database(request.param.removesuffix("-auth"), tmp_path))
    nowhere = {"kind": "rmf_http", "base_url": "http://127.0.0.1:9", "timeout_s": 1.0}
    auth = AUTH_ON if request.param.endswith("-auth") else {}
    process = ServiceProcess(tmp_path, db_url=db_url, targets={"default": nowhere}, **auth)
    process.start()
    try:
        yield process, (["--header", f"Authorization: Bearer {admin_token(process)}"] if auth else [])
    finally:
        process.stop()


def admin_token(process: ServiceProcess) -> str:
    login = urllib.request.Request(
        process.url + "/auth/login",
        data=json.dumps(ADMIN).encode(),
        headers={"Content-Type": "application/json"},
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy
    with direct.open(login, timeout=10) as response:
        return json.load(response)["access_token"]


def test_no_operation_answers_5xx_or_off_its_documented_schema(service, tmp_path: Path) -> None:
    service, headers = service
    # Schemathesis would otherwise try to sign itself up through /auth/register; the admin
    # token (or authentication being off) already opens every operation.
    config = tmp_path / "schemathesis.toml"
    config.write_text("[auth]\nauto-signup = false\n")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
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
        *headers,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
