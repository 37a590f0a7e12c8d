"""Tortoise's SQLite backend, its one connection shared in the order of ``storage.priority``.

``database.tortoise_config`` names this module as the engine of a SQLite database.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.sqlite.client import SqliteClient

from task_scheduler.storage.priority import PriorityLock


class PrioritySqliteClient(SqliteClient):
    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self._lock = PriorityLock()  # what every statement and transaction waits on


client_class = PrioritySqliteClient
