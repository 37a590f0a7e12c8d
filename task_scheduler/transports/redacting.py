"""A target's answers cleaned of its own secrets before the dispatcher keeps or shows them.

A server that echoes what it received (a debugging endpoint, an error page quoting the
request) would otherwise put the target's token, password or secret header values into
the run history and the ``run.finished`` event, which every viewer can read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from task_scheduler.domain.redaction import redact, redact_text, secret_forms
from task_scheduler.transports.base import Delivery, LookupFailed, Transport


class RedactingTransport:
    """Wraps a transport: its deliveries' answers and errors, and its lookup failures,
    come back with ``secrets`` (and credentials of any kind) replaced by ``[redacted]``."""

    def __init__(self, inner: Transport, secrets: Iterable[str]) -> None:
        self.inner = inner
        self._forms = secret_forms(secrets)
        self.supports_lookup = inner.supports_lookup
        self.capacity = inner.capacity

    def __repr__(self) -> str:
        return f"RedactingTransport({self.inner!r})"

    def clean(self, delivery: Delivery) -> Delivery:
        return dataclasses.replace(
            delivery,
            response=redact(delivery.response, self._forms),
            error=None if delivery.error is None else redact_text(delivery.error, self._forms),
        )

    async def submit(self, message: dict[str, Any]) -> Delivery:
        return self.clean(await self.inner.submit(message))

    async def find(self, label: str) -> str | None:
        try:
            return await self.inner.find(label)
        except LookupFailed as exc:
            raise LookupFailed(redact_text(str(exc), self._forms), reached=exc.reached) from None

    async def aclose(self) -> None:
        await self.inner.aclose()
