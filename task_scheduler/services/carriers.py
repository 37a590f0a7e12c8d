"""Each target's transport, built once per version of its configuration.

The dispatcher asks for a target's carrier before sending; the claim loop reads the known
ones' capacity (``Transport.capacity``) to decide how many of a target's tasks to hold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from task_scheduler.domain.redaction import secret_values
from task_scheduler.kinds.base import TransportContext
from task_scheduler.kinds.registry import Registry
from task_scheduler.services.targets import TargetService
from task_scheduler.transports.base import Transport
from task_scheduler.transports.redacting import RedactingTransport


class Carrier(NamedTuple):
    """A target's transport, built for one version of its configuration."""

    version: str
    kind: str
    transport: Transport


class Carriers:
    def __init__(self, targets: TargetService, registry: Registry, context: TransportContext) -> None:
        self._targets = targets
        self._registry = registry
        self._context = context
        # What tasks that name no target go through (http's own URLs), and the target kind
        # whose transport, built without a configuration, carries them.
        self.direct = {
            k.direct_target: k.direct_target_kind for k in registry.task_kinds.values() if k.direct_target
        }
        self.known: dict[str, Carrier] = {}
        """The carriers built so far, by target name."""

    def use_http(self, http: Any) -> None:
        """Build transports on this HTTP session from now on (one of the loop they run on)."""
        self._context = replace(self._context, http=http)

    async def get(self, name: str) -> Carrier | None:
        """The target's transport and kind, rebuilt when its configuration has changed; None
        when there is no such target."""
        cached = self.known.get(name)
        if name in self.direct:
            if cached is None:
                kind = self.direct[name]
                transport = self._registry.target_kinds[kind].transport(None, self._context)
                cached = Carrier("direct", kind, RedactingTransport(transport, ()))
                self.known[name] = cached
            return cached
        resolved = await self._targets.resolve(name)
        if resolved is None:
            return None
        config, version = resolved
        if cached is not None and cached.version == version:
            return cached
        if cached is not None:
            await cached.transport.aclose()
        transport = self._registry.target_kinds[config.kind].transport(config, self._context)
        carrier = Carrier(version, config.kind, RedactingTransport(transport, secret_values(config)))
        self.known[name] = carrier
        return carrier

    async def aclose(self) -> None:
        for carrier in self.known.values():
            await carrier.transport.aclose()
        self.known.clear()
