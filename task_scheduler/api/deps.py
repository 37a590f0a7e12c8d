"""Reach the services the lifespan built, from a route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Query, Request
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from task_scheduler.clock import Clock
from task_scheduler.events import EventBus
from task_scheduler.metrics import Metrics
from task_scheduler.services.auth import AuthService
from task_scheduler.services.calendar import CalendarFeed
from task_scheduler.services.dispatcher import Dispatcher
from task_scheduler.services.rules import RuleService
from task_scheduler.services.runs import RunService
from task_scheduler.services.scheduled_tasks import ScheduledTaskService
from task_scheduler.services.targets import TargetService
from task_scheduler.services.tasks import TaskService
from task_scheduler.services.timers import TimerService
from task_scheduler.storage.database import Database
from task_scheduler.storage.store import Store


@dataclass
class Services:
    database: Database
    store: Store
    clock: Clock
    rules: RuleService
    tasks: TaskService
    runs: RunService
    targets: TargetService
    timers: TimerService
    dispatcher: Dispatcher
    events: EventBus
    metrics: Metrics
    dispatching: bool
    """Whether this replica dispatches (``run_dispatcher``), or only serves the API."""
    auth: AuthService
    calendar: CalendarFeed
    scheduled_tasks: ScheduledTaskService

    async def refresh_gauges(self) -> None:
        """Set the gauges that are read from the database, just before /metrics renders."""
        now = self.clock.now()
        self.metrics.set_queue_depths(await self.store.count_due(now))
        oldest = await self.store.oldest_expansion()
        self.metrics.expander_lag.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _written_out(value: object) -> object:
    """Refuse a bare number, which pydantic would read as Unix time: the schema says date-time."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("an ISO 8601 date-time with an offset, e.g. 2026-01-05T12:00:00Z")
    return value


# An aware datetime from a query, in UTC: SQLite compares stored times as text and the
# MySQL driver drops offsets, so every instant reaches the store in one zone.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_written_out), AfterValidator(_utc)]
# Rule ids are 32-bit columns: a larger filter value is refused rather than sent to the database.
RuleIdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
# Task kinds are plug-ins (rmf, http, sql, file, ...): any name that fits the column.
KindQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="Task kind, e.g. rmf, http, sql or file."),
]
CategoryQuery = Annotated[str | None, Query(max_length=128, description="RMF task category, e.g. clean.")]
# Paging offsets within what every database accepts as a number.
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def services(request: Request) -> Services:
    return request.app.state.services
