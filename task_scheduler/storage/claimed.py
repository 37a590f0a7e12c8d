"""What a claim hands the dispatcher: its tasks and their rules as plain values, read from
the rows without the ORM.

Building ORM objects (a field conversion per column, ISO text parsed by a pure-Python
parser on SQLite) was the largest part of a claim's cost, paid for every task dispatched;
here each row becomes a slotted dataclass with only the columns the dispatcher reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from task_scheduler.storage.orm import TaskRecord

TASK_COLUMNS = (
    "id",
    "rule_id",
    "kind",
    "target",
    "request",
    "enabled",
    "status",
    "scheduled_at",
    "due_at",
    "attempts",
    "lease_owner",
    "lease_until",
)
"""What a claim reads of each task it takes."""

RULE_COLUMNS = (
    "id",
    "task_kind",
    "task",
    "policy",
    "target",
    "channel",
    "enabled",
    "paused_reason",
    "consecutive_failures",
)
"""What the dispatcher reads of a claimed task's rule."""


def instant(value: datetime | str | None) -> datetime | None:
    """A datetime column's raw value as an aware datetime: SQLite returns ISO text, MySQL
    naive UTC, PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _document(value: Any) -> Any:
    """A JSON column's raw value: text on every driver here, decoded."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task as its claim left it: leased to this replica, its attempt counted."""

    id: str
    rule_id: int | None
    kind: str
    target: str | None
    request: Any
    enabled: bool
    status: str
    scheduled_at: datetime
    due_at: datetime
    attempts: int
    lease_owner: str | None
    lease_until: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ClaimedTask:
        return cls(
            id=row["id"],
            rule_id=row["rule_id"],
            kind=row["kind"],
            target=row["target"],
            request=_document(row["request"]),
            enabled=bool(row["enabled"]),
            status=row["status"],
            scheduled_at=instant(row["scheduled_at"]),  # type: ignore[arg-type]
            due_at=instant(row["due_at"]),  # type: ignore[arg-type]
            attempts=row["attempts"],
            lease_owner=row["lease_owner"],
            lease_until=instant(row["lease_until"]),
        )

    @classmethod
    def from_record(cls, record: TaskRecord) -> ClaimedTask:
        return cls(**{column: getattr(record, column) for column in TASK_COLUMNS})


@dataclass(frozen=True, slots=True)
class DispatchRule:
    """A claimed task's rule, as the dispatcher reads it when it sends the task."""

    id: int
    task_kind: str
    task: dict[str, Any]
    policy: dict[str, Any]
    target: str | None
    channel: str | None
    enabled: bool
    paused_reason: str | None
    consecutive_failures: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DispatchRule:
        return cls(
            id=row["id"],
            task_kind=row["task_kind"],
            task=_document(row["task"]),
            policy=_document(row["policy"]),
            target=row["target"],
            channel=row["channel"],
            enabled=bool(row["enabled"]),
            paused_reason=row["paused_reason"],
            consecutive_failures=row["consecutive_failures"],
        )
