"""Timers: "call this URL in h:m:s", the common timer service, as ad-hoc http tasks.

A timer is a task without a rule, of kind ``http``, due once; it shows in /tasks and its
calls in /runs like any other. Its id starts with ``timer-``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from task_scheduler.clock import Clock
from task_scheduler.domain.allowlist import Allowlist
from task_scheduler.domain.errors import Invalid, NotFound
from task_scheduler.domain.schedule import whole_millis
from task_scheduler.domain.targets import check_url
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.events import Event, EventBus, EventType
from task_scheduler.kinds.http import DIRECT_TARGET
from task_scheduler.storage.orm import TaskRecord
from task_scheduler.storage.store import Store

TIMER_PREFIX = "timer-"
MAX_TIMER_S = 366 * 86400

_Part = Annotated[StrictInt, Field(ge=0, le=MAX_TIMER_S)]


class TimerSpec(BaseModel):
    """When (hours, minutes and seconds from now, whole numbers) and which URL to call."""

    model_config = ConfigDict(extra="forbid")

    hours: _Part = 0
    minutes: _Part = 0
    seconds: _Part = 0
    url: str = Field(max_length=2048, examples=["http://127.0.0.1:9000/ring"])
    method: Literal["GET", "POST", "PUT"] = Field(
        "POST", description='How to call it; POST and PUT send {"timer_id": id} as JSON.'
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("http", "https"), query=True)

    @model_validator(mode="after")
    def _bounded(self) -> TimerSpec:
        if self.total_s > MAX_TIMER_S:
            raise ValueError(f"a timer runs for at most {MAX_TIMER_S} seconds (366 days)")
        return self

    @property
    def total_s(self) -> int:
        return self.hours * 3600 + self.minutes * 60 + self.seconds


class TimerView(BaseModel):
    id: str
    seconds_left: int = Field(description="Whole seconds until the call, rounded up; 0 once expired.")
    due_at: datetime
    url: str
    status: TaskStatus = Field(description="The task's status: scheduled until the call is made.")


def _view(record: TaskRecord, now: datetime) -> TimerView:
    left = (record.scheduled_at - now).total_seconds()
    return TimerView(
        id=record.id,
        seconds_left=max(0, math.ceil(left)),
        due_at=record.scheduled_at,
        url=(record.request or {}).get("url", ""),
        status=TaskStatus(record.status),
    )


class TimerService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        events: EventBus,
        changed: Callable[[datetime | None], None],
        allowlist: Allowlist,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._changed = changed
        self._allowlist = allowlist

    async def create(self, spec: TimerSpec) -> TimerView:
        refusal = self._allowlist.url_refusal(spec.url)
        if refusal is not None:
            raise Invalid.at(("url",), refusal)
        now = self._clock.now()
        due = whole_millis(now + timedelta(seconds=spec.total_s))  # as fine as task times go
        timer_id = f"{TIMER_PREFIX}{uuid.uuid4().hex}"
        document = {"kind": "http", "method": spec.method, "url": spec.url}
        if spec.method != "GET":
            document["body"] = {"timer_id": timer_id}
        record = TaskRecord(
            id=timer_id,
            rule_id=None,
            original_at=due,
            scheduled_at=due,
            status=TaskStatus.scheduled.value,
            enabled=True,
            edited=False,
            request=document,
            kind="http",
            target=DIRECT_TARGET,
            due_at=due,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_task(record)
        self._changed(due)
        self._events.publish(
            Event(type=EventType.task_updated, at=now, task_id=timer_id, data={"action": "timer set"})
        )
        return _view(record, now)

    async def get(self, timer_id: str) -> TimerView:
        record = await self._store.get_task(timer_id) if timer_id.startswith(TIMER_PREFIX) else None
        if record is None or record.rule_id is not None:
            raise NotFound("timer", timer_id)
        return _view(record, self._clock.now())
