"""Fuzz the whole OpenAPI surface of a running service with schemathesis.

The service runs as a process on SQLite and on PostgreSQL, with authentication on and an
admin's token on every request; schemathesis generates valid and invalid requests
(NUL characters and lone surrogates included) for every operation from ``/openapi.json``,
from a fixed seed. Every check runs but one: any 5xx, a response off its documented status
codes, content type, headers or schema, invalid input accepted, a method it does not
document answered other than 405 (with an exact ``Allow``), or a door open without the
token, fails. ``positive_data_acceptance`` is left out: a schema cannot say what the
service rightly refuses with 422 (a description that does not match the fleet's schema for
its category, an end before a start, a NUL character).

The budget (``EXAMPLES_PER_OPERATION``) keeps both runs near 50 s each on two cores.
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

EXCLUDED_CHECKS = "positive_data_acceptance"
EXAMPLES_PER_OPERATION = 10
ADMIN = {"username": "root", "password": "fuzzing admin password"}
AUTH_ON = {
    "auth_enabled": True,
    "auth_jwt_secret": "a-secret-for-fuzzing-only-0123456789abcdef",
    "auth_admin_username": ADMIN["username"],
    "auth_admin_password": ADMIN["password"],
}


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path: Path) -> Iterator[ServiceProcess]:
    db_url = asyncio.run(clean_database(request.param, tmp_path))
    nowhere = {"kind": "rmf_http", "base_url": "http://127.0.0.1:9", "timeout_s": 1.0}
    process = ServiceProcess(tmp_path, db_url=db_url, targets={"default": nowhere}, **AUTH_ON)
    process.start()
    try:
        yield process
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
    # Schemathesis would otherwise try to sign itself up through /auth/register; the admin
    # token already opens every operation.
    config = tmp_path / "schemathesis.toml"
    config.write_text("[auth]\nauto-signup = false\n")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "1",
        "--no-color",
        "--header",
        f"Authorization: Bearer {admin_token(service)}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
