"""Task (occurrence) identity and status.

A task's id is derived from its rule and original time, so an occurrence that is only
computed (beyond the stored horizon) already has the id it will keep once stored. The time is
ISO 8601 basic format in UTC, with milliseconds only when they are not zero:
``7-20260105T120000Z``, ``7-20260105T120000.250Z``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from task_scheduler.domain.rules import RmfTaskRequest

_ID_FORMAT = "%Y%m%dT%H%M%S"
_ID_PATTERN = re.compile(r"^(\d{1,10})-(\d{8}T\d{6})(?:\.(\d{3}))?Z$")
_MAX_RULE_ID = 2**31 - 1


class TaskStatus(str, Enum):
    scheduled = "scheduled"
    dispatching = "dispatching"
    dispatched = "dispatched"
    failed = "failed"
    missed = "missed"
    skipped = "skipped"
    cancelled = "cancelled"


def task_id(rule_id: int, original_at: datetime) -> str:
    if original_at.tzinfo is None:
        raise ValueError("original_at must be timezone-aware")
    when = original_at.astimezone(timezone.utc)
    millis = when.microsecond // 1000
    return f"{rule_id}-{when.strftime(_ID_FORMAT)}" + (f".{millis:03d}Z" if millis else "Z")


def parse_task_id(text: str) -> tuple[int, datetime] | None:
    """The (rule id, original UTC time) a task id stands for, or None if it is not one."""
    match = _ID_PATTERN.match(text)
    if not match or match.group(3) == "000":
        return None  # "000" would be a second name for the id without milliseconds
    try:
        when = datetime.strptime(match.group(2), _ID_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    when = when.replace(microsecond=int(match.group(3) or 0) * 1000)
    rule_id = int(match.group(1))
    if not 1 <= rule_id <= _MAX_RULE_ID:
        return None
    return rule_id, when


class TaskPatch(BaseModel):
    """An edit of one occurrence; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(None, description="False skips this occurrence, true restores it.")
    scheduled_at: datetime | None = Field(
        None,
        description="Move the occurrence; without an offset it is wall-clock time in the rule's zone.",
    )
    request: RmfTaskRequest | None = Field(
        None, description="This occurrence's own request; null goes back to the rule's."
    )
