"""Fixtures for the contract suites: an app on a clean real database (see tests/databases.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings
from task_scheduler.domain.auth import Role
from task_scheduler.services import auth
from tests.databases import clean_database
from tests.keys import rsa_pair

SECRET = "a-test-secret-that-is-long-enough-0123456789"
ADMIN, ADMIN_PASSWORD = "root", "root password 1"
ISSUER = "https://sso.example/realms/rmf"
# A Monday, away from any DST change, so tests never depend on the day they run.
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A clean database of each kind, as a URL for the service."""
    return await clean_database(request.param, tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@dataclass
class Service:
    """An app on a real database, with its clock and an HTTP client talking to it in-process."""

    app: object
    clock: FakeClock
    http: httpx.AsyncClient

    async def expand(self) -> int:
        return await self.app.state.expander.run_pass()

    async def dispatch(self, *, ahead: bool = False) -> int:
        """One dispatcher pass: claim what is due at the fake clock's now (with ``ahead``, also
        what falls due within the claim-ahead window, each sent at its time) and dispatch it."""
        return await self.app.state.services.dispatcher.run_pass(ahead=ahead)

    @property
    def services(self):
        return self.app.state.services


@contextlib.asynccontextmanager
async def running_service(config: dict[str, Any], clock: FakeClock) -> AsyncIterator[Service]:
    """An app with this configuration, its loops off (tests drive them), and a client."""
    app = get_app(build_settings(config, environ={}), clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            yield Service(app=app, clock=clock, http=http)


@pytest.fixture
async def service(db_url: str, clock: FakeClock) -> AsyncIterator[Service]:
    async with running_service({"db_url": db_url, "timezone": "UTC"}, clock) as service:
        yield service


@dataclass
class Secured:
    """An app with authentication on: a configured admin, an operator and a viewer, each
    logged in, and an identity provider whose RS256 tokens it accepts."""

    app: object
    clock: FakeClock
    http: httpx.AsyncClient
    idp_key: rsa.RSAPrivateKey
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def external(self, username: str, **claims) -> dict[str, str]:
        claims = {
            "preferred_username": username,
            "aud": "rmf_api_server",
            "iss": ISSUER,
            "exp": int((self.clock.now() + timedelta(minutes=5)).timestamp()),
            **claims,
        }
        return {"Authorization": "Bearer " + jwt.encode(claims, self.idp_key, algorithm="RS256")}

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.http.post("/auth/login", json={"username": username, "password": password})


class QuickHasher(PasswordHasher):
    """argon2id at its cheapest: the service's own profile (tests/unit/test_auth.py) costs
    0.15 s a hash, and each ``secured`` app makes seven."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
async def secured(db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Secured]:
    monkeypatch.setattr(auth, "PasswordHasher", QuickHasher)
    key, public = rsa_pair()
    settings = build_settings(
        {
            "db_url": db_url,
            "auth_enabled": True,
            "auth_jwt_secret": SECRET,
            "auth_token_ttl_s": 3600,
            "auth_admin_username": ADMIN,
            "auth_admin_password": ADMIN_PASSWORD,
            "auth_external_public_key": public,
            "auth_external_issuer": ISSUER,
            "auth_external_role_claim": "realm_access.roles",
            "auth_external_role_map": {"rmf-operator": "operator", "rmf-admin": "admin"},
        },
        environ={},
    )
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            secured = Secured(app=app, clock=clock, http=http, idp_key=key, tokens={})
            secured.tokens[Role.admin] = (await secured.login(ADMIN, ADMIN_PASSWORD)).json()["access_token"]
            for role in (Role.operator, Role.viewer):
                user = {"username": role.value, "password": f"{role.value} password", "role": role.value}
                assert (
                    await http.post("/auth/register", json=user, headers=secured.auth(Role.admin))
                ).status_code == 201
                secured.tokens[role] = (await secured.login(role.value, f"{role.value} password")).json()[
                    "access_token"
                ]
            yield secured
