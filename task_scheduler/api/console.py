"""The operator's console at ``/`` and the API docs, every asset served from the package.

Sites are often offline, so nothing here loads from a CDN: the console's bundle and the
Swagger UI and ReDoc files are built into ``task_scheduler/console/static`` (see
``console/build.mjs``) and shipped with the package.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from task_scheduler import __version__
from task_scheduler.api.deps import Services, services

STATIC_DIR = resources.files("task_scheduler") / "console" / "static"
STATIC_URL = "/console/static"
VENDOR = f"{STATIC_URL}/vendor"

router = APIRouter(tags=["console"])


class ConsoleConfig(BaseModel):
    """What the console needs before it signs in; nothing secret."""

    timezone: str = Field(description="The site's IANA time zone (`timezone`), the calendar's default.")
    auth_enabled: bool = Field(description="Whether a token is needed (`auth_enabled`).")
    version: str


@router.get("/", include_in_schema=False)
async def console_page() -> FileResponse:
    """The console's single page; it loads its script and styles from /console/static."""
    return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/console/config", response_model=ConsoleConfig)
async def console_config(request: Request, svc: Annotated[Services, Depends(services)]) -> ConsoleConfig:
    """The site's time zone and whether sign-in is needed; open to anyone, like the page itself."""
    return ConsoleConfig(
        timezone=request.app.state.site_timezone, auth_enabled=svc.auth.enabled, version=__version__
    )


@router.get("/docs", include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the package's own copy of swagger-ui-dist."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_URL}/favicon.svg",
        oauth2_redirect_url="/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect", include_in_schema=False)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from the package's own copy, without Google Fonts (the page's fonts are local)."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API reference",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC_URL}/favicon.svg",
        with_google_fonts=False,
    )
