"""Fixtures for the contract suites: an app on a clean real database (see tests/databases.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import pytest

from task_scheduler.app import get_app
from task_scheduler.clock import FakeClock
from task_scheduler.config import build_settings
from tests.databases import clean_database

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

    async def dispatch(self) -> int:
        """One dispatcher pass: claim what is due at the fake clock's now and dispatch it."""
        return await self.app.state.services.dispatcher.run_pass()

    @property
    def services(self):
        return self.app.state.services


@pytest.fixture
async def service(db_url: str, clock: FakeClock) -> AsyncIterator[Service]:
    settings = build_settings({"db_url": db_url, "timezone": "UTC"}, environ={})
    app = get_app(settings, clock=clock, run_background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
            yield Service(app=app, clock=clock, http=http)
