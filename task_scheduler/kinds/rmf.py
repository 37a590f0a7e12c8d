"""``rmf``: an Open-RMF task request for a fleet manager (api-server or websocket bridge)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from task_scheduler.domain.messages import build_message
from task_scheduler.domain.rmf_schema import RmfValidationError, validate_task_request
from task_scheduler.domain.rules import RmfTask
from task_scheduler.kinds.base import Occurrence, Problems, TaskKind


class RmfKind(TaskKind):
    name = "rmf"
    spec = RmfTask
    target_kinds = frozenset({"rmf_http", "rmf_ws"})

    def check(self, task: BaseModel) -> Problems:
        assert isinstance(task, RmfTask)
        try:
            validate_task_request(
                task.request.model_dump(exclude_none=True), self.settings.rmf_extra_categories
            )
        except RmfValidationError as exc:
            return [(("request", *path), message) for path, message in exc.problems]
        return []

    def category(self, task: BaseModel) -> str | None:
        assert isinstance(task, RmfTask)
        return task.request.category

    def build(self, document: dict[str, Any], occurrence: Occurrence) -> dict[str, Any]:
        return build_message(
            task_id=occurrence.task_id,
            rule_id=occurrence.rule_id,
            template=document["request"],
            robot=document.get("robot"),
            fleet=document.get("fleet"),
            scheduled_at=occurrence.scheduled_at,
            requester=occurrence.requester,
            now=occurrence.now,
        )
