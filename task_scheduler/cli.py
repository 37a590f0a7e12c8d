"""The ``task_scheduler`` command: serve the API (default), apply migrations, create an admin,
or re-encrypt targets' secrets."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import re
import sys

from task_scheduler import __version__, logs
from task_scheduler.config import CONFIG_ENV, ConfigError, Settings, load_settings

logger = logging.getLogger("task_scheduler")


def _configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


def _database_problem(settings: Settings) -> str | None:
    """Why the database cannot be opened and written, checked before serving: one line for
    the log and a non-zero exit, instead of a server that never gets ready."""
    from task_scheduler.storage.database import Database, DatabaseUnavailable

    async def check() -> None:
        database = Database(settings.db_url)
        await database.open(migrate=False)
        await database.close()

    try:
        asyncio.run(check())
    except DatabaseUnavailable as exc:
        return str(exc)
    return None


def _serve(settings: Settings) -> int:
    import uvicorn

    from task_scheduler.app import get_app

    if problem := _database_problem(settings):
        logger.error("%s", problem)
        return 1
    app = get_app(settings)
    # What is loaded by now lives as long as the process: keep it out of the collector's
    # full passes, which otherwise take 30-60 ms each, stalling the event loop (and every
    # task due meanwhile); with it frozen they take about 3 ms.
    gc.collect()
    gc.freeze()
    # log_config=None: uvicorn's loggers go through the service's handler and format.
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), log_config=None
    )
    return 0


def _migrate(settings: Settings) -> int:
    from task_scheduler.storage.database import Database, DatabaseUnavailable

    async def run() -> list[str]:
        database = Database(settings.db_url)
        await database.open(migrate=False)
        try:
            return await database.migrate()
        finally:
            await database.close()

    try:
        applied = asyncio.run(run())
    except DatabaseUnavailable as exc:
        logger.error("%s", exc)
        return 1
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
    from task_scheduler.storage.database import Database, DatabaseUnavailable
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
    except (Conflict, DatabaseUnavailable) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("admin %r created", username)
    return 0


def _rotate_secrets(settings: Settings) -> int:
    """Re-encrypt every stored target's secrets with the first key of ``secrets_key`` (and
    encrypt those stored in plain text); without a key, store them in plain text."""
    from task_scheduler.clock import SystemClock
    from task_scheduler.domain.allowlist import Allowlist
    from task_scheduler.kinds.registry import load_registry
    from task_scheduler.services.targets import TargetService
    from task_scheduler.storage.database import Database
    from task_scheduler.storage.sealing import SecretBox, SecretsUnreadable
    from task_scheduler.storage.store import Store

    async def run() -> list[str]:
        database = Database(settings.db_url)
        await database.open(migrate=settings.migrate_on_start)
        try:
            box = SecretBox(settings.secrets_keys)
            allowlist = Allowlist(settings.outbound_allowlist)
            targets = TargetService(Store(), SystemClock(), {}, load_registry(settings), allowlist, box)
            return await targets.reseal()
        finally:
            await database.close()

    try:
        rewritten = asyncio.run(run())
    except SecretsUnreadable as exc:
        logger.error("%s; list the old key after the new one in secrets_key", exc)
        return 1
    how = "encrypted with the first key of secrets_key" if settings.secrets_key else "in plain text"
    logger.info("%d target(s) rewritten, %s: %s", len(rewritten), how, ", ".join(rewritten) or "none needed")
    return 0


COMMANDS = {
    "serve": "serve the API and dispatch due tasks (the default)",
    "migrate": "apply the schema migrations and exit",
    "check-config": "validate the configuration and exit",
    "create-admin": "create an admin user (password from a prompt, or the first line of stdin)",
    "rotate-secrets": "re-encrypt targets' secrets with the first key of secrets_key, and exit",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task_scheduler",
        description="rmf-task-scheduler: recurring task rules for Open-RMF fleets.",
        epilog=f"Without --config, the configuration is the Python file named by {CONFIG_ENV}, "
        "or the defaults. Run 'task_scheduler COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"the configuration file (a Python file defining 'config'); wins over {CONFIG_ENV}",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="as above")
        if name == "create-admin":
            command.add_argument("--username", required=True, help="the new admin's name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    environ = dict(os.environ)
    if args.config:
        environ[CONFIG_ENV] = args.config
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        print(f"task_scheduler: {exc}", file=sys.stderr)  # noqa: T201 - the user's terminal, before logging exists
        return 2
    _configure_logging(settings)
    if command == "check-config":
        logger.info("configuration is valid")
        return 0
    if command == "migrate":
        return _migrate(settings)
    if command == "create-admin":
        return _create_admin(settings, args.username)
    if command == "rotate-secrets":
        return _rotate_secrets(settings)
    return _serve(settings)
