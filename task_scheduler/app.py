"""The application factory: everything is built inside ``get_app``, nothing at import.

``uvicorn --factory task_scheduler.app:get_app`` calls it with no argument, which reads
the configuration from ``RMF_TASK_SCHEDULER_CONFIG``; tests pass settings and a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from task_scheduler import __version__, logs
from task_scheduler.api import (
    auth,
    calendar,
    console,
    errors,
    events,
    health,
    metrics,
    rules,
    runs,
    scheduled_tasks,
    targets,
    tasks,
    timers,
)
from task_scheduler.api.admission import AdmissionLimit
from task_scheduler.api.deps import Services
from task_scheduler.api.inputs import storable_input
from task_scheduler.api.observe import ObserveRequests
from task_scheduler.clock import Clock, SystemClock
from task_scheduler.config import Settings, load_settings
from task_scheduler.domain.allowlist import Allowlist
from task_scheduler.events import EventBus
from task_scheduler.kinds.base import TransportContext
from task_scheduler.kinds.registry import load_registry
from task_scheduler.metrics import Metrics
from task_scheduler.services.auth import AuthService, AuthSettings
from task_scheduler.services.calendar import CalendarFeed
from task_scheduler.services.dispatch_thread import DispatchThread, on_loop
from task_scheduler.services.dispatcher import Dispatcher, DispatchSettings
from task_scheduler.services.expander import Expander
from task_scheduler.services.retention import Retention
from task_scheduler.services.rules import RuleService
from task_scheduler.services.runs import RunService
from task_scheduler.services.scheduled_tasks import ScheduledTaskService
from task_scheduler.services.targets import TargetService
from task_scheduler.services.tasks import TaskService
from task_scheduler.services.timers import TimerService
from task_scheduler.storage.change_feed import ChangeFeed
from task_scheduler.storage.database import Database
from task_scheduler.storage.sealing import SecretBox
from task_scheduler.storage.store import Store
from task_scheduler.transports.allowlist import AllowlistResolver

logger = logging.getLogger(__name__)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


def auth_settings(settings: Settings) -> AuthSettings:
    return AuthSettings(
        enabled=settings.auth_enabled,
        secret=settings.auth_jwt_secret,
        token_ttl=timedelta(seconds=settings.auth_token_ttl_s),
        feed_token_ttl=timedelta(seconds=settings.auth_feed_token_ttl_s),
        external_public_key=settings.auth_external_public_key,
        external_audience=settings.auth_external_audience,
        external_issuer=settings.auth_external_issuer,
        external_role_claim=settings.auth_external_role_claim,
        external_role_map=dict(settings.auth_external_role_map),
        external_default_role=settings.auth_external_default_role,
        login_max_failures=settings.auth_login_max_failures,
        login_max_failures_per_address=settings.auth_login_max_failures_per_address,
        login_window=timedelta(seconds=settings.auth_login_window_s),
        login_concurrency=settings.auth_login_concurrency,
        login_wait_s=settings.auth_login_wait_s,
    )


def outbound_session(allowlist: Allowlist) -> aiohttp.ClientSession:
    """The HTTP session transports send through, on the running loop.

    Each target bounds its own requests in flight (max_connections), so the pool needs no
    limit of its own and keeps every connection those allow for reuse. Every host name is
    resolved through the outbound allowlist."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, resolver=AllowlistResolver(allowlist)), trust_env=False
    )


def get_app(
    settings: Settings | None = None, *, clock: Clock | None = None, run_background: bool = True
) -> FastAPI:
    """Build the service.  ``run_background=False`` leaves the expander and dispatcher loops
    off, so tests drive them pass by pass with a fake clock."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    logs.install()
    kinds = load_registry(settings)
    allowlist = Allowlist(settings.outbound_allowlist)
    registry = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.db_url)
        await database.open(migrate=settings.migrate_on_start)
        try:
            store = Store()
            target_service = TargetService(
                store, clock, settings.targets, kinds, allowlist, SecretBox(settings.secrets_keys)
            )
            if not await database.pending_migrations():  # else not ready: /readyz says so
                await target_service.check_secrets()
            bus = EventBus()
            http = outbound_session(allowlist)
            dispatcher = Dispatcher(
                store,
                clock,
                target_service,
                kinds,
                TransportContext(http=http, allowlist=allowlist, targets=target_service.config),
                on_loop(asyncio.get_running_loop(), bus.publish),
                registry,
                DispatchSettings(
                    replica_id=settings.replica_id or default_replica_id(),
                    requester=settings.requester,
                    lease_s=settings.lease_s,
                    batch=settings.dispatch_batch,
                    concurrency=settings.dispatch_concurrency,
                    poll_s=settings.dispatch_poll_s,
                    claim_ahead_s=settings.dispatch_claim_ahead_s,
                ),
            )
            feed = ChangeFeed(
                settings.db_url, dispatcher.replica_id, on_change=dispatcher.wake, on_event=bus.publish
            )
            bus.stream.subscribe(on_next=feed.relay)  # every replica's /events clients see this one's events

            def changed(due_at: datetime | None = None) -> None:
                dispatcher.wake(due_at)
                feed.poke()

            expander = Expander(
                store,
                clock,
                bus,
                horizon_s=settings.expansion_horizon_s,
                batch=settings.expansion_batch,
                poll_s=settings.expansion_poll_s,
            )
            retention = Retention(
                store, clock, runs_days=settings.runs_retention_days, tasks_days=settings.tasks_retention_days
            )
            auth_service = AuthService(store, clock, auth_settings(settings))
            await auth_service.start(settings.auth_admin_username, settings.auth_admin_password)
            rule_service = RuleService(
                store,
                expander,
                clock,
                targets=target_service,
                events=bus,
                changed=changed,
                default_timezone=settings.timezone,
                registry=kinds,
                allowlist=allowlist,
            )
            app.state.services = Services(
                database=database,
                store=store,
                clock=clock,
                rules=rule_service,
                tasks=TaskService(
                    store,
                    clock,
                    events=bus,
                    changed=changed,
                    rmf=kinds.task_kinds["rmf"],
                ),
                runs=RunService(store),
                targets=target_service,
                timers=TimerService(store, clock, events=bus, changed=changed, allowlist=allowlist),
                dispatcher=dispatcher,
                events=bus,
                metrics=registry,
                dispatching=settings.run_dispatcher,
                auth=auth_service,
                calendar=CalendarFeed(store, clock, settings.timezone),
                scheduled_tasks=ScheduledTaskService(store, rule_service, clock, timezone=settings.timezone),
            )
            app.state.expander = expander
            app.state.retention = retention
            loops = []
            feed.start()
            # Its own loop and thread, so that no API request can hold it up.
            dispatching = None
            if run_background:
                loops = [asyncio.create_task(expander.run(), name="expander")]
                if retention.active:
                    loops.append(asyncio.create_task(retention.run(), name="retention"))
                if settings.run_dispatcher:
                    dispatching = DispatchThread(
                        dispatcher, lambda: outbound_session(allowlist), settings.shutdown_grace_s
                    )
                    dispatching.start()
            logger.info(
                "task scheduler %s ready on %s%s",
                dispatcher.replica_id,
                database.dialect,
                "" if settings.run_dispatcher else ", API only (run_dispatcher is off)",
            )
            if not settings.secrets_key:
                logger.warning(
                    "secrets_key is not set: the secrets of targets made over the API are stored "
                    "in plain text"
                )
            if not settings.auth_enabled:
                logger.warning(
                    "authentication is off (auth_enabled is False): anyone who can reach the API is an admin"
                )
        except BaseException:
            await database.close()  # a start-up that fails leaves nothing open
            raise
        try:
            yield
        finally:
            try:
                for loop in loops:
                    loop.cancel()
                for loop in loops:
                    with contextlib.suppress(asyncio.CancelledError):
                        await loop
                if dispatching is not None:
                    await dispatching.stop()
                else:
                    await dispatcher.stop(settings.shutdown_grace_s)
            except Exception:
                logger.exception("could not hand back claimed tasks; their leases will run out")
            finally:
                await feed.stop()
                bus.close()
                await http.close()
                auth_service.close()
                await database.close()

    app = FastAPI(
        title="rmf-task-scheduler",
        version=__version__,
        description="Recurring task rules for Open-RMF fleets, dispatched on time, exactly once.\n\n"
        "A request that needs more than `request_cpu_s` of CPU (a listing or calendar over a long"
        " window of a frequent rule, a preview of a rule that fires once in decades) is answered"
        " 422 and changes nothing. Not 503: the same request would need as much again, so it is"
        " to be narrowed, not retried.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        # Served by api.console from the package's own files: sites are often offline.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(storable_input)],
    )
    app.state.site_timezone = settings.timezone
    errors.install(app)
    app.add_middleware(AdmissionLimit, limit=settings.api_concurrency, cpu_s=settings.request_cpu_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    # Outermost: the request id is set before anything else logs.
    app.add_middleware(ObserveRequests, metrics=registry)
    for module in (rules, tasks, runs, targets, timers, auth, calendar, scheduled_tasks, events, metrics):
        app.include_router(module.router, responses=errors.Problem.UNAVAILABLE)
    for module in (health, console):  # /readyz documents its own 503; the console's pages read no database
        app.include_router(module.router)
    app.mount(console.STATIC_URL, StaticFiles(directory=str(console.STATIC_DIR)), name="console-static")
    return app
