"""Which hosts the service may call: the outbound allowlist, and the one reading of a host.

An entry is a host name (``fleet.example.com``), a wildcard for its subdomains
(``*.example.com``), an address or a network (``10.0.0.0/8``, ``::1``), or ``*`` for any
host. A name entry trusts the name whatever it resolves to; a host that matches no name
is allowed only when every address it resolves to lies in an allowed network, so a name
cannot smuggle a call to an address outside the list.

Every host, in an entry or a URL, is read by :func:`normalise_host`, and the transports
connect to the host it returns: what the list is checked against is what is dialled.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import idna

DEFAULT_ALLOWLIST = ("localhost", "127.0.0.0/8", "::1")
"""Loopback only: the embedded demo talks to a fleet and servers on this machine."""

MAX_HOST = 253
MAX_LABEL = 63

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"[a-z0-9_-]+")


def _ipv4_number(part: str) -> int | None:
    """One label of a normalised name as a part of an IPv4 address, in any form ``inet_aton``
    reads: decimal, ``0x`` hex, ``0`` octal. None when it is not a number."""
    base, digits = 10, part
    if part.startswith("0x"):
        base, digits = 16, part[2:]
    elif part.startswith("0"):
        base = 8
    if not digits.isalnum():  # int() would also read "1_0" as 10; a resolver does not
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The address a name whose last label is a number stands for (``127.1``, ``0x7f.1``,
    ``2130706433``, ``0177.0.0.1``), as the resolver would read it; None when its last label
    is not a number; ValueError when it is, but the whole is no address (no real name ends
    in a number, so such a name would only ever be read as an address)."""
    parts = name.split(".")
    if not parts[-1].isdigit() and _ipv4_number(parts[-1]) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or None in numbers:
        raise ValueError("ends in a number but is not an IPv4 address")
    value = 0
    for index, number in enumerate(numbers):
        assert number is not None
        last = index == len(numbers) - 1
        if number >= (256 ** (4 - index) if last else 256):
            raise ValueError("is not an IPv4 address: a part is out of range")
        value += number if last else number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _deleted(character: str) -> bool:
    """Whether UTS-46 maps ``character`` to nothing (a zero-width space, a soft hyphen, ...)."""
    try:
        return idna.uts46_remap(character, std3_rules=False, transitional=False) == ""
    except idna.IDNAError:
        return False


def _name(host: str) -> str:
    """A host name as ASCII (IDNA with UTS-46 mapping, as the HTTP client sends it), lower case.

    A character the mapping would silently delete is refused: ``e\u200bvil.com`` is not
    ``evil.com`` to the person who wrote it (the HTTP client refuses it too)."""
    if not host.isascii():
        if any(_deleted(character) for character in host if not character.isascii()):
            raise ValueError("holds an invisible character")
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise ValueError(f"is not a valid international name ({error})") from None
    host = host.lower()
    if len(host) > MAX_HOST:
        raise ValueError(f"is longer than {MAX_HOST} characters")
    for label in host.split("."):
        if not label:
            raise ValueError("has an empty label")
        if len(label) > MAX_LABEL or not _LABEL.fullmatch(label):
            raise ValueError(f"label {label!r} is not a host name label (letters, digits, - and _)")
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                raise ValueError(f"label {label!r} is not valid punycode") from None
    return host


def normalise_host(host: str) -> str:
    """The host as it is checked and dialled, or ``ValueError`` saying why it is none.

    An address comes back in its standard form: 127.0.0.2 written in fullwidth or circled
    digits, with ideographic full stops, as ``0x7f.2``, ``127.2`` or ``2130706434`` is
    ``127.0.0.2``, and ``[::FFFF:7f00:2]`` is ``::ffff:7f00:2``. A name comes back in
    lower-case ASCII without its trailing dot: ``Bücher.DE.`` is ``xn--bcher-kva.de``.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        if "%" in host:
            raise ValueError("an IPv6 zone is not allowed")
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise ValueError("is not an IPv6 address") from None
    name = _name(host[:-1] if host.endswith((".", "\u3002", "\uff0e", "\uff61")) else host)
    address = _ipv4(name)
    return name if address is None else str(address)


def address_of(host: str) -> _Address | None:
    """The address a normalised host is, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _network(entry: str) -> _Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def check_entry(entry: str) -> str:
    """``entry`` normalised, or ``ValueError`` saying why it is not one."""
    entry = entry.strip()
    if not entry:
        raise ValueError("an empty entry")
    if entry == "*" or _network(entry) is not None:
        return entry.lower()
    wildcard = entry.startswith("*.")
    try:
        host = normalise_host(entry[2:] if wildcard else entry)
    except ValueError as error:
        raise ValueError(f"{entry!r} is not a host name, *.domain, address or network: it {error}") from None
    if wildcard and address_of(host) is not None:
        raise ValueError(f"{entry!r}: a wildcard goes before a domain, not an address")
    return f"*.{host}" if wildcard else host


class Allowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        normalised = [check_entry(entry) for entry in entries]
        self.any = "*" in normalised
        self._names = {e for e in normalised if not e.startswith("*.") and _network(e) is None and e != "*"}
        self._suffixes = tuple(e[1:] for e in normalised if e.startswith("*."))
        self._networks = [n for e in normalised if (n := _network(e)) is not None]

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` (a name, not an address) is trusted by name."""
        try:
            host = normalise_host(host)
        except ValueError:
            return False
        return self.any or host in self._names or host.endswith(self._suffixes)

    def allows_address(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        return self.any or any(ip in network for network in self._networks)

    def refusal(self, host: str | None) -> str | None:
        """Why a URL naming ``host`` may not be called, as far as can be told without resolving
        it; None when it may (a name not trusted by name is checked address by address when
        it is resolved)."""
        if not host:
            return "the URL has no host"
        try:
            normalised = normalise_host(host)
        except ValueError as error:
            return f"the host {host!r} {error}"
        if address_of(normalised) is None or self.allows_address(normalised):
            return None
        shown = host if normalised == host.strip("[]") else f"{host} ({normalised})"
        return f"{shown} is not in outbound_allowlist"

    def url_refusal(self, url: str) -> str | None:
        """:meth:`refusal` for the host of ``url``."""
        try:
            host = urlsplit(url).hostname
        except ValueError as error:
            return f"not a valid URL: {error}"
        return self.refusal(host)


def refused_urls(
    allowlist: Allowlist, urls: Iterable[tuple[tuple[str | int, ...], str]]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(field, reason) for each (field, URL) whose host the allowlist refuses outright."""
    return [(field, reason) for field, url in urls if (reason := allowlist.url_refusal(url)) is not None]
