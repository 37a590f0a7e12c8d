"""The ``task_scheduler`` command: serve the API (default), or apply migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from task_scheduler.config import ConfigError, Settings, load_settings

logger = logging.getLogger("task_scheduler")


QUIET_LOGGERS = ("tortoise.db_client", "aiosqlite", "asyncmy")
"""Database drivers whose DEBUG lines carry SQL parameters, which may hold targets' secrets
(passwords, tokens): they log at INFO at most, whatever ``log_level`` says."""


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))


def _serve(settings: Settings) -> int:
    import uvicorn

    from task_scheduler.app import get_app

    uvicorn.run(
        get_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower()
    )
    return 0


def _migrate(settings: Settings) -> int:
    from task_scheduler.storage.database import Database

    async def run() -> list[str]:
        database = Database(settings.db_url)
        await database.open(migrate=False)
        try:
            return await database.migrate()
        finally:
            await database.close()

    applied = asyncio.run(run())
    logger.info("applied %d migration(s): %s", len(applied), ", ".join(applied) or "none needed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="task_scheduler",
        description="rmf-task-scheduler. Configuration: the Python file named by RMF_TASK_SCHEDULER_CONFIG.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "check-config"],
        help="serve the API (default), apply the schema migrations, or only validate the configuration",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"task_scheduler: {exc}", file=sys.stderr)  # noqa: T201 - the user's terminal, before logging exists
        return 2
    _configure_logging(settings)
    if args.command == "check-config":
        logger.info("configuration is valid")
        return 0
    if args.command == "migrate":
        return _migrate(settings)
    return _serve(settings)
