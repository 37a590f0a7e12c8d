"""Enforce the outbound allowlist on every connection the service makes.

The aiohttp session resolves host names through :class:`AllowlistResolver`, which drops
every address outside the list: a name that resolves (or rebinds) to a forbidden address
cannot be reached. Addresses written in a URL skip resolution, so :func:`refuse` checks
them before a request; websocket and database connections, which do not go through
aiohttp, call :func:`checked_host` first.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from task_scheduler.domain.allowlist import Allowlist


class NotAllowed(OSError):
    """The host is outside ``outbound_allowlist``. An OSError, so that a refusal from
    :class:`AllowlistResolver` reaches the caller inside aiohttp's connection error."""


def refusal_in(error: BaseException) -> NotAllowed | None:
    """The allowlist's refusal behind a connection error, if that is what it was."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, NotAllowed):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


class AllowlistResolver(AbstractResolver):
    def __init__(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if self._allowlist.allows_name(host):
            return results
        allowed = [r for r in results if self._allowlist.allows_address(r["host"])]
        if not allowed:
            raise NotAllowed(f"{host} is not in outbound_allowlist")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def refuse(allowlist: Allowlist, host: str | None) -> None:
    """Raise :class:`NotAllowed` for a host the allowlist refuses before any resolution."""
    reason = allowlist.refusal(host)
    if reason is not None:
        raise NotAllowed(reason)


async def checked_host(allowlist: Allowlist, host: str | None, port: int | None) -> None:
    """Raise :class:`NotAllowed` unless a connection to ``host`` is allowed (resolving a name)."""
    refuse(allowlist, host)
    assert host is not None
    if allowlist.is_address(host) or allowlist.allows_name(host):
        return
    loop = asyncio.get_running_loop()
    try:
        infos: list[Any] = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the connection itself will fail and say why
    if not all(allowlist.allows_address(info[4][0]) for info in infos):
        raise NotAllowed(f"{host} resolves to an address outside outbound_allowlist")
