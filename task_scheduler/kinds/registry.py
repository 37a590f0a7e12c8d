"""Every task kind and target kind the service knows: the built-in ones and plug-ins.

A plug-in package names its classes under entry points, for example in ``setup.py``::

    entry_points={
        "rmf_task_scheduler.task_kinds": ["ftp = my_site.kinds:FtpKind"],
        "rmf_task_scheduler.target_kinds": ["ftp = my_site.kinds:FTP_TARGET"],
    }

A task kind entry names a :class:`TaskKind` subclass, a target kind entry a
:class:`TargetKind`. A plug-in that cannot be loaded, or that reuses a name, stops
start-up with a message naming it: a rule of a missing kind must not silently fail later.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.targets import (
    DatabaseTarget,
    DirectoryTarget,
    HttpTarget,
    RmfHttpTarget,
    RmfWsTarget,
)
from task_scheduler.kinds.base import TargetKind, TaskKind
from task_scheduler.kinds.file import FileKind
from task_scheduler.kinds.http import HttpKind
from task_scheduler.kinds.rmf import RmfKind
from task_scheduler.kinds.sql import SqlKind
from task_scheduler.transports.file import FileTransport
from task_scheduler.transports.http import HttpTransport
from task_scheduler.transports.rmf_http import RmfHttpTransport
from task_scheduler.transports.rmf_ws import RmfWsTransport
from task_scheduler.transports.sql import SqlTransport

TASK_KINDS_GROUP = "rmf_task_scheduler.task_kinds"
TARGET_KINDS_GROUP = "rmf_task_scheduler.target_kinds"

BUILTIN_TASK_KINDS: tuple[type[TaskKind], ...] = (RmfKind, HttpKind, SqlKind, FileKind)
BUILTIN_TARGET_KINDS = (
    TargetKind(
        "rmf_http", RmfHttpTarget, lambda config, ctx: RmfHttpTransport(config, ctx.http, ctx.allowlist)
    ),
    TargetKind("rmf_ws", RmfWsTarget, lambda config, ctx: RmfWsTransport(config, ctx.allowlist)),
    TargetKind("http", HttpTarget, lambda config, ctx: HttpTransport(config, ctx)),
    TargetKind("directory", DirectoryTarget, lambda config, ctx: FileTransport(ctx)),
    TargetKind("database", DatabaseTarget, lambda config, ctx: SqlTransport(config, ctx.allowlist)),
)


class PluginError(Exception):
    """A plug-in kind could not be loaded; the message names it."""


def _problems(error: ValidationError, prefix: tuple[str | int, ...]) -> Invalid:
    return Invalid(
        [
            ((*prefix, *item["loc"]), item["msg"])
            for item in error.errors(include_input=False, include_url=False)
        ]
    )


class Registry:
    def __init__(
        self, settings: Any, task_kinds=BUILTIN_TASK_KINDS, target_kinds=BUILTIN_TARGET_KINDS
    ) -> None:
        self.task_kinds: dict[str, TaskKind] = {}
        for cls in task_kinds:
            if cls.name in self.task_kinds:
                raise PluginError(f"two task kinds are named {cls.name!r}")
            self.task_kinds[cls.name] = cls(settings)
        self.kinds_naming_other_targets = [
            name
            for name, kind in self.task_kinds.items()
            if type(kind).other_targets is not TaskKind.other_targets
        ]
        """The task kinds whose tasks may use targets besides their own (a copy's source)."""
        self.target_kinds: dict[str, TargetKind] = {}
        for target_kind in target_kinds:
            if target_kind.name in self.target_kinds:
                raise PluginError(f"two target kinds are named {target_kind.name!r}")
            self.target_kinds[target_kind.name] = target_kind

    def task(
        self, document: dict[str, Any], prefix: tuple[str | int, ...] = ("task",)
    ) -> tuple[TaskKind, BaseModel]:
        """The kind of a ``task`` document and the document validated by it, or :class:`Invalid`
        naming the field (under ``prefix``)."""
        name = document.get("kind", "rmf")
        kind = self.task_kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self.task_kinds))
            raise Invalid.at((*prefix, "kind"), f"no task kind {name!r} is installed (known: {known})")
        try:
            task = kind.spec.model_validate(document)
        except ValidationError as exc:
            raise _problems(exc, prefix) from None
        problems = kind.check(task)
        if problems:
            raise Invalid([((*prefix, *path), message) for path, message in problems])
        return kind, task

    def target(
        self, config: BaseModel | dict[str, Any], prefix: tuple[str | int, ...] = ("config",)
    ) -> BaseModel:
        """A target configuration validated by its kind's model, or :class:`Invalid`."""
        data = config.model_dump() if isinstance(config, BaseModel) else config
        target_kind = self.target_kinds.get(data.get("kind"))
        if target_kind is None:
            known = ", ".join(sorted(self.target_kinds))
            raise Invalid.at(
                (*prefix, "kind"), f"no target kind {data.get('kind')!r} is installed (known: {known})"
            )
        if isinstance(config, target_kind.config):
            return config
        try:
            return target_kind.config.model_validate(data)
        except ValidationError as exc:
            raise _problems(exc, prefix) from None


def _load(group: str) -> list[Any]:
    loaded = []
    for entry in entry_points(group=group):
        try:
            loaded.append(entry.load())
        except Exception as exc:
            raise PluginError(
                f"could not load {group} entry point {entry.name!r} ({entry.value}): {exc}"
            ) from exc
    return loaded


def load_registry(settings: Any) -> Registry:
    """The built-in kinds and every installed plug-in's."""
    task_kinds = [*BUILTIN_TASK_KINDS]
    for cls in _load(TASK_KINDS_GROUP):
        if not (isinstance(cls, type) and issubclass(cls, TaskKind)):
            raise PluginError(f"{TASK_KINDS_GROUP} entry {cls!r} is not a TaskKind subclass")
        task_kinds.append(cls)
    target_kinds = [*BUILTIN_TARGET_KINDS]
    for target_kind in _load(TARGET_KINDS_GROUP):
        if not isinstance(target_kind, TargetKind):
            raise PluginError(f"{TARGET_KINDS_GROUP} entry {target_kind!r} is not a TargetKind")
        target_kinds.append(target_kind)
    return Registry(settings, task_kinds, target_kinds)
