"""Targets' secrets encrypted at rest, key rotation, and plain text without a key, on every database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from task_scheduler import cli
from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.storage.orm import TargetRecord
from task_scheduler.storage.sealing import SEALED, SecretsUnreadable

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
TOKEN, API_KEY = "fleet-token-0123456789", "api-key-9876543210"
FLEET = {"name": "site-b", "config": {"kind": "rmf_http", "base_url": "http://127.0.0.1:9", "token": TOKEN}}
WEB = {
    "name": "status",
    "config": {"kind": "http", "base_url": "http://127.0.0.1:9", "secret_headers": {"X-Api-Key": API_KEY}},
}


@contextlib.asynccontextmanager
async def running(db_url: str, clock, secrets_key: str | None = None) -> AsyncIterator[Any]:
    options = {"db_url": db_url} | ({"secrets_key": secrets_key} if secrets_key else {})
    app = get_app(build_settings(options, environ={}), clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            app.state.http = http
            yield app


async def row(name: str) -> dict[str, Any]:
    return (await TargetRecord.get(name=name)).config


async def test_secrets_are_stored_encrypted_and_read_back_for_use(db_url, clock):
    async with running(db_url, clock, KEY_A) as app:
        for target in (FLEET, WEB):
            assert (await app.state.http.post("/targets", json=target)).status_code == 201
        fleet, web = await row("site-b"), await row("status")
        assert TOKEN not in json.dumps(fleet) and API_KEY not in json.dumps(web)
        assert fleet[SEALED].startswith("gAAAAA") and "token" not in fleet and "secret_headers" not in web
        assert fleet["base_url"] == "http://127.0.0.1:9"  # what the target is stays readable
        shown = (await app.state.http.get("/targets/site-b")).json()
        assert shown["config"]["secrets_set"] == ["token"] and TOKEN not in str(shown)
        assert (await app.state.services.targets.config("site-b")).token == TOKEN
        assert (await app.state.services.targets.config("status")).secret_headers == {"X-Api-Key": API_KEY}


async def test_keys_rotate_the_first_encrypting_and_every_one_decrypting(db_url, clock):
    async with running(db_url, clock, KEY_A) as app:
        await app.state.http.post("/targets", json=FLEET)
        under_a = await row("site-b")
    async with running(db_url, clock, f"{KEY_B},{KEY_A}") as app:
        assert (await app.state.services.targets.config("site-b")).token == TOKEN
        assert await app.state.services.targets.reseal() == ["site-b"]
        assert await app.state.services.targets.reseal() == []  # all under the first key now
        assert (await row("site-b"))[SEALED] != under_a[SEALED]
    async with running(db_url, clock, KEY_B) as app:
        assert (await app.state.services.targets.config("site-b")).token == TOKEN
    with pytest.raises(SecretsUnreadable, match="'site-b' has secrets encrypted with a key that is not"):
        async with running(db_url, clock, KEY_A):
            pass


async def test_without_a_key_secrets_are_plain_with_a_warning_and_sealed_once_a_key_comes(
    db_url, clock, caplog
):
    with caplog.at_level(logging.WARNING, logger="task_scheduler.app"):
        async with running(db_url, clock) as app:
            for target in (FLEET, WEB):
                await app.state.http.post("/targets", json=target)
            assert (await row("site-b"))["token"] == TOKEN and SEALED not in await row("site-b")
    assert "secrets_key is not set: the secrets of targets made over the API are stored in plain text" in (
        caplog.text
    )
    async with running(db_url, clock, KEY_A) as app:
        assert (await app.state.services.targets.config("site-b")).token == TOKEN  # plain rows keep working
        replaced = await app.state.http.put("/targets/site-b", json=FLEET["config"])
        assert replaced.status_code == 200
        assert TOKEN not in json.dumps(await row("site-b"))  # sealed when rewritten
        assert API_KEY in json.dumps(await row("status"))
        assert await app.state.services.targets.reseal() == ["status"]  # the plain one left, sealed
        assert API_KEY not in json.dumps(await row("status"))
        assert (await app.state.services.targets.config("status")).secret_headers == {"X-Api-Key": API_KEY}
    with pytest.raises(SecretsUnreadable, match="secrets_key is not set"):
        async with running(db_url, clock):
            pass


def test_the_rotate_secrets_command_reseals_with_the_first_key(tmp_path: Path, monkeypatch, caplog, clock):
    db_url = f"sqlite://{tmp_path / 'db.sqlite3'}"

    async def make_and_read(key: str | None) -> dict[str, Any]:
        async with running(db_url, clock, key) as app:
            if key is None:
                await app.state.http.post("/targets", json=FLEET)
            return await row("site-b")

    assert asyncio.run(make_and_read(None))["token"] == TOKEN
    config = tmp_path / "config.py"
    monkeypatch.setenv("RMF_TASK_SCHEDULER_CONFIG", str(config))
    config.write_text(f"config = {{'db_url': {db_url!r}, 'secrets_key': {KEY_B!r}}}\n")
    with caplog.at_level(logging.INFO):
        assert cli.main(["rotate-secrets"]) == 0
    assert "1 target(s) rewritten, encrypted with the first key of secrets_key: site-b" in caplog.text
    assert TOKEN not in json.dumps(asyncio.run(make_and_read(KEY_B)))
    config.write_text(f"config = {{'db_url': {db_url!r}, 'secrets_key': {KEY_A!r}}}\n")
    assert cli.main(["rotate-secrets"]) == 1  # KEY_B is gone from the list: nothing can be read
    assert KEY_A not in caplog.text and KEY_B not in caplog.text
