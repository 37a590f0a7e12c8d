"""Reach the services the lifespan built, from a route."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from task_scheduler.clock import Clock
from task_scheduler.services.rules import RuleService
from task_scheduler.services.tasks import TaskService
from task_scheduler.storage.database import Database


@dataclass
class Services:
    database: Database
    clock: Clock
    rules: RuleService
    tasks: TaskService


def services(request: Request) -> Services:
    return request.app.state.services
