"""Targets: named connections tasks go through, from the configuration or made over the API.

Targets from the configuration are read-only through the API; secrets are accepted but
never returned, and stored encrypted when ``secrets_key`` is set (``storage.sealing``).
Every configuration is validated by its kind's model (see ``kinds.registry``), plug-in
kinds included.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from task_scheduler.clock import Clock
from task_scheduler.domain.allowlist import Allowlist, refused_urls
from task_scheduler.domain.errors import Conflict, Invalid, NotFound
from task_scheduler.domain.storable import require_storable
from task_scheduler.domain.targets import TargetConfig, outbound_urls, public_view
from task_scheduler.kinds.registry import Registry
from task_scheduler.storage.orm import TargetRecord
from task_scheduler.storage.retry import retrying
from task_scheduler.storage.sealing import SecretBox
from task_scheduler.storage.store import Store

logger = logging.getLogger(__name__)

_CONFIG_VERSION = "config"


class TargetSpec(BaseModel):
    """A target as a client writes it: a name and the connection."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    config: TargetConfig


class TargetView(BaseModel):
    name: str
    used_by: int = Field(
        description="How many rules use it: as their own target, or as another end (a copy's source)."
    )
    source: str = Field(description="config (read-only) or api")
    config: dict[str, Any] = Field(description="The connection, without secret values (see secrets_set).")


class TargetService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        configured: Mapping[str, BaseModel],
        registry: Registry,
        allowlist: Allowlist,
        box: SecretBox | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._registry = registry
        self._allowlist = allowlist
        self._box = box or SecretBox(())
        self._configured = {
            name: registry.target(config, ("targets", name)) for name, config in configured.items()
        }
        # Not a start-up error: the default target is configured whether it is used or not.
        for name, config in self._configured.items():
            for field, reason in refused_urls(allowlist, outbound_urls(config)):
                logger.warning("target %r (%s): %s; its calls will be rejected", name, field[0], reason)

    def _stored(self, record: TargetRecord) -> BaseModel:
        return self._registry.target(self._box.open(record.config, record.name))

    def _sealed(self, config: BaseModel, field: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The configuration as stored (secrets sealed); a new one (``field``: where it is in
        the request) checked to fit what can be stored."""
        document = config.model_dump(mode="json") if field is None else _document(config, field)
        return self._box.seal(document, getattr(config, "secret_fields", ()))

    async def check_secrets(self) -> None:
        """Raise :class:`SecretsUnreadable` unless every stored target's secrets can be read
        with the configured keys: checked at start-up, so a missing key stops the service
        rather than its tasks."""
        for record in await self._store.list_targets():
            self._box.open(record.config, record.name)

    @retrying
    async def reseal(self) -> list[str]:
        """Store every target's secrets as the configured keys say (encrypted with the first
        key; plain text without a key); return the names of those rewritten."""
        rewritten = []
        async with self._store.transaction():
            for record in await self._store.list_targets(for_update=True):
                config = self._stored(record)
                if not self._box.current(record.config, getattr(config, "secret_fields", ())):
                    await self._store.save_target(record, config=self._sealed(config))
                    rewritten.append(record.name)
        return rewritten

    async def resolve(self, name: str) -> tuple[BaseModel, str] | None:
        """The target's connection and a version that changes whenever it is edited."""
        if name in self._configured:
            return self._configured[name], _CONFIG_VERSION
        record = await self._store.get_target(name)
        if record is None:
            return None
        return self._stored(record), record.updated_at.isoformat()

    async def config(self, name: str) -> BaseModel | None:
        """The target's current connection, None when there is no such target."""
        resolved = await self.resolve(name)
        return resolved[0] if resolved else None

    async def _users(self) -> Counter[str]:
        """How many rules name each target: as their own (one grouped query), and for the
        kinds whose tasks name more than one, as the others their documents name."""
        users = Counter(await self._store.rules_per_target())
        for kind_name, document in await self._store.rule_tasks(self._registry.kinds_naming_other_targets):
            kind = self._registry.task_kinds[kind_name]
            try:
                others = {name for _, name in kind.other_targets(kind.spec.model_validate(document))}
            except ValidationError:
                continue  # a document its kind no longer reads: its own target is counted already
            users.update(others - {document.get("target")})
        return users

    async def list(self, *, unused: bool = False) -> list[TargetView]:
        """Every target, or (``unused``) those no rule names."""
        users = await self._users()
        views = [
            TargetView(name=n, used_by=users[n], source="config", config=public_view(c))
            for n, c in sorted(self._configured.items())
        ]
        for record in await self._store.list_targets():
            config = public_view(self._stored(record))
            views.append(
                TargetView(name=record.name, used_by=users[record.name], source="api", config=config)
            )
        return [view for view in views if not (unused and view.used_by)]

    async def get(self, name: str) -> TargetView:
        users = await self._users()
        if name in self._configured:
            config = public_view(self._configured[name])
            return TargetView(name=name, used_by=users[name], source="config", config=config)
        record = await self._store.get_target(name)
        if record is None:
            raise NotFound("target", name)
        config = public_view(self._stored(record))
        return TargetView(name=name, used_by=users[name], source="api", config=config)

    def _checked(self, config: BaseModel, prefix: tuple[str, ...]) -> BaseModel:
        """A target as it may be stored: valid for its kind, and no host the allowlist
        refuses outright (an address outside it; a name is checked when it is resolved)."""
        config = self._registry.target(config, prefix)
        refused = refused_urls(self._allowlist, outbound_urls(config))
        if refused:
            raise Invalid([((*prefix, *field), reason) for field, reason in refused])
        return config

    def _writable(self, name: str) -> None:
        if name in self._configured:
            raise Conflict(f"target {name!r} comes from the configuration; change it there")

    async def create(self, spec: TargetSpec) -> TargetView:
        self._writable(spec.name)
        config = self._checked(spec.config, ("config",))
        now = self._clock.now()
        await self._store.insert_target(
            name=spec.name,
            kind=config.kind,
            config=self._sealed(config, ("config",)),
            created_at=now,
            updated_at=now,
        )
        return await self.get(spec.name)

    @retrying
    async def replace(self, name: str, config: BaseModel) -> TargetView:
        self._writable(name)
        config = self._checked(config, ())
        async with self._store.transaction():
            record = await self._store.get_target(name)
            if record is None:
                raise NotFound("target", name)
            await self._store.save_target(
                record, kind=config.kind, config=self._sealed(config, ()), updated_at=self._clock.now()
            )
        return await self.get(name)

    @retrying
    async def delete(self, name: str) -> None:
        self._writable(name)
        async with self._store.transaction():
            if await self._store.get_target(name) is None:
                raise NotFound("target", name)
            users = (await self._users())[name]
            if users:
                raise Conflict(f"target {name!r} is used by {users} rule(s)")
            await self._store.delete_target(name)

    @retrying
    async def delete_unused(self) -> list[str]:
        """Delete every target made over the API that no rule names; configured ones stay."""
        async with self._store.transaction():
            users = await self._users()
            names = [r.name for r in await self._store.list_targets() if not users[r.name]]
            await self._store.delete_targets(names)
        return names


def _document(config: BaseModel, field: tuple[str, ...]) -> dict[str, Any]:
    """A configuration as stored, checked to fit what can be stored (422 at ``field``)."""
    document = config.model_dump(mode="json")
    require_storable(document, field)
    return document
