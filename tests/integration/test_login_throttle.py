"""Login throttling and the bound on password hashing, with authentication on, on every database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher

from task_scheduler.app import get_app
from task_scheduler.config import build_settings
from task_scheduler.services.auth import HASHING_NICENESS
from tests.integration.conftest import ADMIN, ADMIN_PASSWORD, SECRET

WRONG = "not the password"


class HashSpy:
    """Wraps argon2's verify (the real check still runs) to count calls and how many run at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.active = 0
        self.most = 0
        self.niceness: set[int] = set()
        self.entered = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self._lock = threading.Lock()
        real = PasswordHasher.verify

        def verify(hasher: PasswordHasher, hash: str, password: str) -> bool:
            with self._lock:
                self.calls += 1
                self.active += 1
                self.most = max(self.most, self.active)
                self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            self.entered.set()
            try:
                self.go.wait(10)
                return real(hasher, hash, password)
            finally:
                with self._lock:
                    self.active -= 1

        monkeypatch.setattr(PasswordHasher, "verify", verify)


async def test_failures_for_a_name_get_429_with_retry_after_and_no_hash(secured, monkeypatch):
    spy = HashSpy(monkeypatch)
    for _ in range(5):
        assert (await secured.login(ADMIN, WRONG)).status_code == 401
    assert spy.calls == 5
    secured.clock.advance(seconds=100)
    throttled = await secured.login(ADMIN, ADMIN_PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "200"  # the first failure leaves the window then
    assert throttled.json() == {"detail": "too many failed logins; try again later"}
    assert spy.calls == 5  # refused before any hashing
    assert (await secured.login("viewer", "viewer password")).status_code == 200  # other names go on

    secured.clock.advance(seconds=200)
    assert (await secured.login(ADMIN, ADMIN_PASSWORD)).status_code == 200


async def test_unknown_names_are_throttled_alike(secured):
    for _ in range(5):
        assert (await secured.login("nobody", WRONG)).status_code == 401
    assert (await secured.login("nobody", WRONG)).status_code == 429


async def test_a_success_clears_the_names_failures(secured):
    for _ in range(4):
        assert (await secured.login(ADMIN, WRONG)).status_code == 401
    assert (await secured.login(ADMIN, ADMIN_PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await secured.login(ADMIN, WRONG)).status_code == 401
    assert (await secured.login(ADMIN, WRONG)).status_code == 401  # the fifth since the success
    assert (await secured.login(ADMIN, ADMIN_PASSWORD)).status_code == 429


async def test_failures_from_one_address_throttle_that_address_only(secured):
    for n in range(20):  # four guesses at each of five names: none reaches the per-name limit
        assert (await secured.login(f"guess{n % 5}", WRONG)).status_code == 401
    throttled = await secured.login("viewer", "viewer password")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "300"

    elsewhere = httpx.ASGITransport(app=secured.app, client=("10.0.0.9", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://scheduler") as other:
        body = {"username": "viewer", "password": "viewer password"}
        assert (await other.post("/auth/login", json=body)).status_code == 200


async def test_password_hashes_run_a_few_at_a_time(secured, monkeypatch):
    spy = HashSpy(monkeypatch)
    answers = await asyncio.gather(*(secured.login(f"name{n}", WRONG) for n in range(8)))
    assert [a.status_code for a in answers] == [401] * 8
    assert spy.calls == 8 and spy.most <= 2  # auth_login_concurrency
    assert spy.niceness == {HASHING_NICENESS}  # below the event loop's priority


@contextlib.asynccontextmanager
async def client(db_url: str, clock, **options: object) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of an app with authentication on, an admin, and ``options``."""
    values = {
        "db_url": db_url,
        "auth_enabled": True,
        "auth_jwt_secret": SECRET,
        "auth_admin_username": ADMIN,
        "auth_admin_password": ADMIN_PASSWORD,
        **options,
    }
    app = get_app(build_settings(values, environ={}), clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
            yield http


async def test_logins_waiting_for_a_hash_hold_up_no_other_request(db_url, clock, monkeypatch):
    async with client(db_url, clock, api_concurrency=1) as http:
        body = {"username": ADMIN, "password": ADMIN_PASSWORD}
        token = (await http.post("/auth/login", json=body)).json()["access_token"]
        spy = HashSpy(monkeypatch)
        spy.go.clear()
        login = asyncio.create_task(http.post("/auth/login", json=body))
        assert await asyncio.to_thread(spy.entered.wait, 10)
        rules = await asyncio.wait_for(http.get("/rules", headers={"Authorization": f"Bearer {token}"}), 10)
        assert rules.status_code == 200 and not login.done()
        spy.go.set()
        assert (await login).status_code == 200


async def test_a_login_finding_no_hashing_slot_in_time_gets_503(db_url, clock, monkeypatch):
    async with client(db_url, clock, auth_login_concurrency=1, auth_login_wait_s=0) as http:
        spy = HashSpy(monkeypatch)
        spy.go.clear()
        body = {"username": ADMIN, "password": ADMIN_PASSWORD}
        first = asyncio.create_task(http.post("/auth/login", json=body))
        assert await asyncio.to_thread(spy.entered.wait, 10)  # the one slot is taken
        busy = await http.post("/auth/login", json=body)
        spy.go.set()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert (await first).status_code == 200
        # The busy answer was no failed guess: five wrong ones still make the limit.
        for _ in range(5):
            assert (await http.post("/auth/login", json={**body, "password": WRONG})).status_code == 401
        assert (await http.post("/auth/login", json=body)).status_code == 429
