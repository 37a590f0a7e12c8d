"""The ``task_scheduler`` command: serve the API (default), apply migrations, or create an admin."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import re
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

    app = get_app(settings)
    # What is loaded by now lives as long as the process: keep it out of the collector's
    # full passes, which otherwise take 30-60 ms each, stalling the event loop (and every
    # task due meanwhile); with it frozen they take about 3 ms.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())
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


def _read_password() -> str:
    """From a prompt (asked twice) on a terminal, else the first line of stdin; never argv,
    which other users of the machine can read in the process list."""
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def _create_admin(settings: Settings, username: str) -> int:
    from task_scheduler.app import auth_settings
    from task_scheduler.clock import SystemClock
    from task_scheduler.domain.auth import USERNAME_PATTERN, check_password
    from task_scheduler.domain.errors import Conflict
    from task_scheduler.services.auth import AuthService
    from task_scheduler.storage.database import Database
    from task_scheduler.storage.store import Store

    if not re.match(USERNAME_PATTERN, username):
        logger.error("--username: letters, digits and . _ @ + - only, at most 128")
        return 2
    try:
        password = _read_password()
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    if problem := check_password(password):
        logger.error("password: %s", problem)
        return 2

    async def run() -> None:
        database = Database(settings.db_url)
        await database.open(migrate=settings.migrate_on_start)
        try:
            users = AuthService(Store(), SystemClock(), auth_settings(settings))
            await users.create_admin(username, password)
        finally:
            await database.close()

    try:
        asyncio.run(run())
    except Conflict as exc:
        logger.error("%s", exc)
        return 1
    logger.info("admin %r created", username)
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
        choices=["serve", "migrate", "check-config", "create-admin"],
        help="serve the API (default), apply the schema migrations, only validate the configuration, "
        "or create an admin user (password from a prompt or stdin)",
    )
    parser.add_argument("--username", help="create-admin: the new admin's name")
    args = parser.parse_args(argv)
    if args.command == "create-admin" and not args.username:
        parser.error("create-admin needs --username")
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
    if args.command == "create-admin":
        return _create_admin(settings, args.username)
    return _serve(settings)
