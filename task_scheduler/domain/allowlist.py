"""Which hosts the service may call: the outbound allowlist, as pure matching.

An entry is a host name (``fleet.example.com``), a wildcard for its subdomains
(``*.example.com``), an address or a network (``10.0.0.0/8``, ``::1``), or ``*`` for any
host. A name entry trusts the name whatever it resolves to; a host that matches no name
is allowed only when every address it resolves to lies in an allowed network, so a name
cannot smuggle a call to an address outside the list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

DEFAULT_ALLOWLIST = ("localhost", "127.0.0.0/8", "::1")
"""Loopback only: the embedded demo talks to a fleet and servers on this machine."""

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(entry: str) -> _Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def check_entry(entry: str) -> str:
    """``entry`` normalised, or ``ValueError`` saying why it is not one."""
    entry = entry.strip().lower().rstrip(".")
    if not entry:
        raise ValueError("an empty entry")
    if entry == "*" or _network(entry) is not None:
        return entry
    name = entry[2:] if entry.startswith("*.") else entry
    labels = name.split(".")
    if not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
        raise ValueError(f"{entry!r} is not a host name, *.domain, address or network")
    return entry


class Allowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        normalised = [check_entry(entry) for entry in entries]
        self.any = "*" in normalised
        self._names = {e for e in normalised if not e.startswith("*.") and _network(e) is None and e != "*"}
        self._suffixes = tuple(e[1:] for e in normalised if e.startswith("*."))
        self._networks = [n for e in normalised if (n := _network(e)) is not None]

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` (a name, not an address) is trusted by name."""
        host = host.lower().rstrip(".")
        return self.any or host in self._names or host.endswith(self._suffixes)

    def allows_address(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        return self.any or any(ip in network for network in self._networks)

    def is_address(self, host: str) -> bool:
        return _network(host.strip("[]")) is not None and "/" not in host

    def refusal(self, host: str | None) -> str | None:
        """Why a URL naming ``host`` may not be called before resolving it; None when it may
        (a name that is not trusted by name is then checked address by address)."""
        if not host:
            return "the URL has no host"
        if self.is_address(host):
            return None if self.allows_address(host.strip("[]")) else f"{host} is not in outbound_allowlist"
        return None
