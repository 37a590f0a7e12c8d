"""The console's page, its configuration and the API docs, all served from the package."""

from __future__ import annotations

import re

from task_scheduler import __version__

ASSET = re.compile(r"""(?:src|href)\s*[=:]\s*['"]([^'"]+)['"]""")


def assets(html: str) -> list[str]:
    return ASSET.findall(html)


async def test_the_console_page_and_its_assets_come_from_the_service(service):
    page = await service.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    urls = assets(page.text)
    assert {"/console/static/console.js", "/console/static/console.css"} <= set(urls)
    for url in urls:
        assert url.startswith("/"), url
        assert (await service.http.get(url)).status_code == 200, url


async def test_swagger_ui_and_redoc_load_nothing_from_outside(service):
    for docs in ("/docs", "/redoc"):
        html = (await service.http.get(docs)).text
        urls = [u for u in assets(html) if not u.startswith("#")]
        assert urls, docs
        for url in urls:
            assert url.startswith("/"), (docs, url)
            assert (await service.http.get(url)).status_code == 200, (docs, url)
        assert "fonts.googleapis" not in html and "cdn.jsdelivr" not in html


async def test_console_config_names_the_site_zone_and_whether_to_sign_in(service):
    answer = (await service.http.get("/console/config")).json()
    assert answer == {"timezone": "UTC", "auth_enabled": False, "version": __version__}


async def test_console_config_needs_no_token_with_authentication_on(secured):
    answer = await secured.http.get("/console/config")
    assert answer.status_code == 200 and answer.json()["auth_enabled"] is True
