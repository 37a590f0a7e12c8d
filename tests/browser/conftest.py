"""A real service process, the fake fleet and one headless Chromium for the console's tests.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`); Playwright never
downloads a browser. Without it these tests skip, except in CI (`CI` set), where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from task_scheduler.testing.fake_fleet import FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "a-browser-test-secret-long-enough-0123456789"
PASSWORDS = {"admin": "admin password 1", "operator": "operator password 1", "viewer": "viewer password 1"}
SITE_ZONE = "Europe/Berlin"
LOCAL = ("data", "blob")  # URL schemes whose content is in the page already


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    skip = pytest.mark.skip(reason=f"no {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@dataclass
class Site:
    """The service under test, with a token per role for setting things up over the API."""

    service: ServiceProcess
    fleet: FakeFleetProcess
    tokens: dict[str, str]
    requested: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.service.url

    def api(self, method: str, path: str, role: str = "admin", **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def outside(self) -> list[str]:
        """Every URL the browser asked for that the service does not serve."""
        own = urlsplit(self.url).netloc
        return [u for u in self.requested if urlsplit(u).netloc != own and urlsplit(u).scheme not in LOCAL]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("console")
    with FakeFleetProcess() as fleet:
        service = ServiceProcess(
            workdir,
            timezone=SITE_ZONE,
            auth_enabled=True,
            auth_jwt_secret=SECRET,
            auth_admin_username="admin",
            auth_admin_password=PASSWORDS["admin"],
            targets={"default": {"kind": "rmf_http", "base_url": fleet.url, "timeout_s": 2.0}},
            lease_s=2.0,
            shutdown_grace_s=0.5,
        )
        service.start()
        try:
            login = httpx.post(
                service.url + "/auth/login", json={"username": "admin", "password": PASSWORDS["admin"]}
            )
            tokens = {"admin": login.json()["access_token"]}
            for role in ("operator", "viewer"):
                httpx.post(
                    service.url + "/auth/register",
                    json={"username": role, "password": PASSWORDS[role], "role": role},
                    headers={"Authorization": f"Bearer {tokens['admin']}"},
                ).raise_for_status()
                answer = httpx.post(
                    service.url + "/auth/login", json={"username": role, "password": PASSWORDS[role]}
                )
                tokens[role] = answer.json()["access_token"]
            yield Site(service=service, fleet=fleet, tokens=tokens)
        finally:
            service.stop()


@pytest.fixture(scope="module")
def browser(site: Site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_as(site: Site, browser):
    """``page_as(role)``: a fresh browser context signed in through the form as that role."""
    contexts = []

    def open_page(role: str):
        # The browser's zone differs from the site's: the console shows the site's by default.
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, timezone_id="America/New_York"
        )
        contexts.append(context)
        page = context.new_page()
        page.on("request", lambda request: site.requested.append(request.url))
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(site.url + "/")
        page.get_by_label("User name").fill(role)
        page.get_by_label("Password").fill(PASSWORDS[role])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text(f"{role} ({role})").wait_for()
        return page

    yield open_page
    for context in contexts:
        context.close()
