"""The Open-RMF message a due task becomes: pure, from the task, its rule and the time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

RULE_LABEL = "task_scheduler.rule"
TASK_LABEL = "task_scheduler.task"


def task_label(task_id: str) -> str:
    """The label that finds this task at the fleet manager (``GET /tasks?label=``)."""
    return f"{TASK_LABEL}={task_id}"


def unix_millis(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def build_message(
    *,
    task_id: str,
    rule_id: int | None,
    template: dict[str, Any],
    robot: str | None,
    fleet: str | None,
    scheduled_at: datetime,
    requester: str,
    now: datetime,
) -> dict[str, Any]:
    """A ``dispatch_task_request`` (or ``robot_task_request`` for a named robot).

    Labels name the rule and the occurrence, so an ambiguous outcome can be settled by
    asking the fleet, and ``unix_millis_earliest_start_time`` is the occurrence time,
    which matters when the rule's lead time sends it early. A ``requester`` or time the
    template gives is sent as given, as the RMF api-server sends a scheduled task's.
    """
    request = {key: value for key, value in template.items() if value is not None}
    labels = [label for label in template.get("labels", []) if not label.startswith(("task_scheduler.",))]
    if rule_id is not None:
        labels.append(f"{RULE_LABEL}={rule_id}")
    labels.append(task_label(task_id))
    request["labels"] = labels
    request.setdefault("requester", requester)
    request.setdefault("unix_millis_request_time", unix_millis(now))
    request.setdefault("unix_millis_earliest_start_time", unix_millis(scheduled_at))
    if robot is not None and fleet is not None:
        return {"type": "robot_task_request", "robot": robot, "fleet": fleet, "request": request}
    return {"type": "dispatch_task_request", "request": request}
