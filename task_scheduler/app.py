"""The application factory: everything is built inside ``get_app``, nothing at import.

``uvicorn --factory task_scheduler.app:get_app`` calls it with no argument, which reads
the configuration from ``RMF_TASK_SCHEDULER_CONFIG``; tests pass settings and a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from task_scheduler import __version__
from task_scheduler.api import errors, health, rules, tasks
from task_scheduler.api.deps import Services
from task_scheduler.clock import Clock, SystemClock
from task_scheduler.config import Settings, load_settings
from task_scheduler.services.expander import Expander
from task_scheduler.services.rules import RuleService
from task_scheduler.services.tasks import TaskService
from task_scheduler.storage.database import Database
from task_scheduler.storage.store import Store

logger = logging.getLogger(__name__)


def get_app(
    settings: Settings | None = None, *, clock: Clock | None = None, run_background: bool = True
) -> FastAPI:
    """Build the service.  ``run_background=False`` leaves the expander loop off (tests drive it)."""
    settings = settings or load_settings()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.db_url)
        await database.open(migrate=settings.migrate_on_start)
        store = Store()
        expander = Expander(
            store,
            clock,
            horizon_s=settings.expansion_horizon_s,
            batch=settings.expansion_batch,
            poll_s=settings.expansion_poll_s,
        )
        app.state.services = Services(
            database=database,
            clock=clock,
            rules=RuleService(
                store,
                expander,
                clock,
                default_timezone=settings.timezone,
                extra_categories=settings.rmf_extra_categories,
            ),
            tasks=TaskService(store, clock, extra_categories=settings.rmf_extra_categories),
        )
        app.state.expander = expander
        background = asyncio.create_task(expander.run(), name="expander") if run_background else None
        logger.info("task scheduler ready on %s", database.dialect)
        try:
            yield
        finally:
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await database.close()

    app = FastAPI(
        title="rmf-task-scheduler",
        version=__version__,
        description="Recurring task rules for Open-RMF fleets, dispatched on time, exactly once.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (rules, tasks, health):
        app.include_router(module.router)
    return app
