"""Enforce the outbound allowlist on every connection the service makes.

Every host is read once, by :func:`~task_scheduler.domain.allowlist.normalise_host`, and
the connection is made to what it returns, so what is checked is what is dialled: a URL
for aiohttp is rewritten with that host (:func:`outbound_url`); a websocket connects to
the address :func:`dial` approved; a database driver is given the normalised host
(:func:`checked_host`). The aiohttp session resolves names through
:class:`AllowlistResolver`, which drops every address outside the list, so a name that
resolves (or rebinds) to a forbidden address cannot be reached.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from task_scheduler.domain.allowlist import Allowlist, address_of, normalise_host


class NotAllowed(OSError):
    """The host is outside ``outbound_allowlist``, or cannot be read as a host. An OSError,
    so that a refusal from :class:`AllowlistResolver` reaches the caller inside aiohttp's
    connection error."""


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


def _normalised(allowlist: Allowlist | None, host: str | None) -> str:
    """``host`` normalised; :class:`NotAllowed` when it cannot be read, or is an address
    outside the list (``allowlist`` None: any host)."""
    if not host:
        raise NotAllowed("the URL has no host")
    try:
        normalised = normalise_host(host)
    except ValueError as error:
        raise NotAllowed(f"the host {host!r} {error}") from None
    reason = allowlist.refusal(host) if allowlist is not None else None
    if reason is not None:
        raise NotAllowed(reason)
    return normalised


def outbound_url(allowlist: Allowlist | None, url: str) -> URL:
    """``url`` with its host normalised, as aiohttp is to call it: an address goes straight
    to the socket, so it is checked here; a name goes through :class:`AllowlistResolver`.

    Raises :class:`NotAllowed` for a host that cannot be read or an address outside the list.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise NotAllowed(f"not a valid URL: {error}") from None
    host = _normalised(allowlist, parts.hostname)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    try:
        target = URL(urlunsplit(parts._replace(netloc=netloc)))
    except ValueError as error:
        raise NotAllowed(f"not a usable URL: {error}") from None
    if target.raw_host != host:  # the client would read the host otherwise: call nothing
        raise NotAllowed(f"the host {parts.hostname!r} would be called as {target.raw_host!r}")
    return target


async def dial(allowlist: Allowlist | None, url: str) -> tuple[URL, str]:
    """:func:`outbound_url` and the address to connect to, for a connection aiohttp does not
    make: the caller connects to that address and names the URL's host in its request and TLS.

    An address is checked as it is; a name trusted by name is dialled as the name; any
    other name is resolved once here and the first address the list allows is dialled, so
    no second lookup can answer differently. :class:`NotAllowed` when none is allowed; the
    resolver's own OSError when the name does not resolve.
    """
    target = outbound_url(allowlist, url)
    host = target.raw_host
    assert host is not None
    if allowlist is None or address_of(host) is not None or allowlist.allows_name(host):
        return target, host
    infos: list[Any] = await asyncio.get_running_loop().getaddrinfo(
        host, target.port, type=socket.SOCK_STREAM
    )
    for info in infos:
        address = info[4][0]
        if allowlist.allows_address(address):
            return target, address
    raise NotAllowed(f"{host} resolves to no address in outbound_allowlist")


async def checked_host(allowlist: Allowlist, host: str | None, port: int | None) -> str:
    """The normalised host to give a database driver, which resolves names itself:
    :class:`NotAllowed` unless it is allowed (a name: every address it resolves to)."""
    normalised = _normalised(allowlist, host)
    if address_of(normalised) is not None or allowlist.allows_name(normalised):
        return normalised
    loop = asyncio.get_running_loop()
    try:
        infos: list[Any] = await loop.getaddrinfo(normalised, port, type=socket.SOCK_STREAM)
    except OSError:
        return normalised  # the connection itself will fail and say why
    if not all(allowlist.allows_address(info[4][0]) for info in infos):
        raise NotAllowed(f"{host} resolves to an address outside outbound_allowlist")
    return normalised
