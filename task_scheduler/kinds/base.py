"""The plug-in interface: a task kind and a target kind.

A task kind is pure: it validates a ``task`` document, says which target kinds can carry
it, and turns one occurrence of it into the message its target's transport sends. The
transport (I/O) comes from the target kind. A site adds a kind by subclassing
:class:`TaskKind` (or building a :class:`TargetKind`) and naming it under an entry point;
see "Adding a task kind" in docs/task-kinds.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    import aiohttp

    from task_scheduler.transports.allowlist import Allowlist
    from task_scheduler.transports.base import Transport

Problems = list[tuple[tuple[str | int, ...], str]]
"""(path within the task document, message) pairs: what makes a document unusable."""


@dataclass(frozen=True)
class Occurrence:
    """What a kind may use, besides the task document, to build its message."""

    task_id: str
    rule_id: int | None
    scheduled_at: datetime
    now: datetime
    requester: str


class TaskKind:
    """One kind of task. Subclasses set the class attributes and override what they need."""

    name: ClassVar[str]
    spec: ClassVar[type[BaseModel]]
    """The ``task`` document of this kind: a pydantic model with ``kind`` and ``target``."""
    target_kinds: ClassVar[frozenset[str]]
    """The target kinds that can carry it."""
    direct_target: ClassVar[str | None] = None
    """What a task of this kind that names no target goes through (a name no target can
    have); None when a target is required."""
    direct_target_kind: ClassVar[str] = "http"
    """The target kind whose transport, built without a configuration, carries such a task."""

    def __init__(self, settings: Any) -> None:
        """``settings``: the service's :class:`~task_scheduler.config.Settings`."""
        self.settings = settings

    def check(self, task: BaseModel) -> Problems:
        """What pydantic cannot see (a fleet schema, a pattern that would not compile): empty when fine."""
        return []

    def check_target(self, task: BaseModel, target: BaseModel) -> Problems:
        """What the task asks of its target that the target lacks (a query it does not
        configure, a read-only directory to write to): empty when fine."""
        return []

    def other_targets(self, task: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        """Targets the task uses besides ``task.target`` (the source of a copy between two
        directories), each with the field that names it. A rule is saved only when each
        exists and is of a kind in :attr:`target_kinds`; the transport looks them up by
        name (:attr:`TransportContext.targets`)."""
        return []

    def urls(self, task: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        """The URLs the task calls by itself (not through a target), each with its field: a
        rule is saved only when ``outbound_allowlist`` does not refuse their hosts outright."""
        return []

    def category(self, task: BaseModel) -> str | None:
        """A category to list and filter by (RMF's task category); None when the kind has none."""
        return None

    def build(self, document: dict[str, Any], occurrence: Occurrence) -> dict[str, Any]:
        """The message the transport sends for this occurrence of ``document``."""
        raise NotImplementedError

    def resend_safe(self, document: dict[str, Any]) -> bool:
        """Whether sending it twice does no harm, so an attempt with an unknown outcome may be
        repeated. False (the default) settles such an attempt as failed instead."""
        return False


@dataclass(frozen=True)
class TransportContext:
    """What a transport may share with the rest of the service."""

    http: aiohttp.ClientSession
    """The service's HTTP session; its resolver already enforces the allowlist."""
    allowlist: Allowlist
    targets: Callable[[str], Awaitable[BaseModel | None]] | None = None
    """A target's current configuration by name (None when there is none), for a transport
    whose messages reach more than one target."""


@dataclass(frozen=True)
class TargetKind:
    """A target kind: its configuration model and how to build a transport from one."""

    name: str
    config: type[BaseModel]
    transport: Callable[[Any, TransportContext], Transport]
