"""``/metrics``: Prometheus text format, from the app's own registry."""

from __future__ import annotations

import inspect
import logging

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["metrics"])

logger = logging.getLogger(__name__)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Refresh the database-backed gauges, then render.

    ``services.refresh_gauges()`` (optional, sync or async) sets the gauges that are
    read from the database.  If it fails the scrape still answers, with those gauges
    stale and ``task_scheduler_metrics_refresh_errors_total`` counting up, so the
    counters and histograms stay visible when the database is not.
    """
    services = request.app.state.services
    refresh = getattr(services, "refresh_gauges", None)
    if callable(refresh):
        try:
            result = refresh()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("refreshing the metrics gauges failed; serving stale values")
            services.metrics.refresh_errors.inc()
    body, content_type = services.metrics.render()
    return Response(content=body, media_type=content_type)
