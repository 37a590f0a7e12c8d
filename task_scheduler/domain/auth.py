"""Who may do what: roles, the caller, and the bearer tokens that name them.

Pure logic: tokens are signed and checked here with the time passed in, so expiry is
tested with a fake clock; looking users up and hashing passwords happen in the service.
"""

from __future__ import annotations

import enum
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

USERNAME_PATTERN: Final = r"^[A-Za-z0-9._@+-]{1,128}$"
"""Fits the ``created_by``/``updated_by`` columns and reads safely in logs and URLs."""
MIN_PASSWORD_LENGTH: Final = 10
MAX_PASSWORD_LENGTH: Final = 1024
"""Bounds the work a login costs: argon2 hashes any length, but a megabyte is no password."""
ISSUER: Final = "rmf_task_scheduler"
# The audience of calendar feed tokens (GET /calendar.ics?token=), which open nothing else.
FEED_AUDIENCE: Final = "rmf_task_scheduler/calendar.ics"
"""``iss`` and ``aud`` of the tokens /auth/login mints (not those it sends to fleets)."""
CLOCK_SKEW: Final = timedelta(seconds=30)
"""Leeway for ``exp`` and ``nbf``: an identity provider's clock may run a little apart."""


class Role(str, enum.Enum):
    """``viewer`` reads; ``operator`` also changes rules and tasks; ``admin`` also targets,
    users and bulk deletes.  Each role may do everything the ones below it may."""

    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Principal:
    """The caller of a request.  ``username`` is None when authentication is switched off."""

    username: str | None
    role: Role
    source: str
    """``builtin`` (a token from /auth/login), ``external`` (the identity provider's) or ``off``."""


ANONYMOUS = Principal(username=None, role=Role.admin, source="off")
"""Everyone, when ``auth_enabled`` is False: local development and the embedded demo."""


class BadToken(Exception):
    """The token is not one this service accepts; the message says why, without secrets."""


def check_password(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"at most {MAX_PASSWORD_LENGTH} characters"
    return None


def acceptable_password(password: str | None) -> str | None:
    """A pydantic validator: the password, or ``ValueError`` saying why not (never echoing it)."""
    if password is not None and (problem := check_password(password)):
        raise ValueError(problem)
    return password


def role_from_claims(
    claims: Mapping[str, Any], claim: str | None, mapping: Mapping[str, Role], default: Role | None
) -> Role | None:
    """An external user's role: the highest role that ``mapping`` gives to a value of the
    ``claim`` (a dotted path such as ``realm_access.roles``; a string or a list of them),
    else ``default``.  None means the user may not use the service at all."""
    value: Any = claims
    for part in (claim or "").split(".") if claim else ():
        value = value.get(part) if isinstance(value, Mapping) else None
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    granted = [mapping[name] for name in names if isinstance(name, str) and name in mapping]
    return max(granted, key=lambda role: role.rank) if granted else default


def mint(username: str, role: Role, secret: str, now: datetime, ttl: timedelta) -> tuple[str, datetime]:
    """A signed HS256 token for a built-in user, and when it expires."""
    expires = now + ttl
    claims = {
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": username,
        "preferred_username": username,
        "role": role.value,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def mint_feed(principal: Principal, secret: str, now: datetime, ttl: timedelta) -> tuple[str, datetime]:
    """A long-lived HS256 token that opens only the calendar feed: its audience is
    FEED_AUDIENCE, which ``verify_builtin`` refuses, so it is no bearer token."""
    expires = now + ttl
    claims = {
        "iss": ISSUER,
        "aud": FEED_AUDIENCE,
        "sub": principal.username,
        "role": principal.role.value,
        "src": principal.source,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def verify_feed(token: str, secret: str, now: datetime) -> Principal:
    """Who a valid feed token from ``mint_feed`` names, with the role it was minted with."""
    claims = _decode(token, secret, "HS256", FEED_AUDIENCE, ISSUER, now)
    try:
        return Principal(username=claims["sub"], role=Role(claims["role"]), source=str(claims["src"]))
    except (KeyError, ValueError):
        raise BadToken("the feed token names no user and role") from None


def _decode(
    token: str, key: Any, algorithm: str, audience: str, issuer: str, now: datetime
) -> dict[str, Any]:
    """Check signature, audience and issuer with PyJWT, and the times against ``now``
    (PyJWT would read the system clock)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "require": ["exp", "aud", "iss"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise BadToken(f"invalid token: {exc}") from None
    stamp = now.timestamp()
    skew = CLOCK_SKEW.total_seconds()
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= stamp - skew:
        raise BadToken("the token has expired")
    if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > stamp + skew:
        raise BadToken("the token is not valid yet")
    return claims


def token_algorithm(token: str) -> str:
    """The ``alg`` a token's header claims; it only picks which key to check it with."""
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.InvalidTokenError:
        raise BadToken("malformed token") from None


def verify_builtin(token: str, secret: str, now: datetime) -> str:
    """The username of a valid token minted by ``mint``."""
    claims = _decode(token, secret, "HS256", ISSUER, ISSUER, now)
    username = claims.get("sub")
    if not isinstance(username, str) or not username:
        raise BadToken("the token names no user")
    return username


def verify_external(token: str, public_key: str, audience: str, issuer: str, now: datetime) -> dict[str, Any]:
    """The claims of a valid RS256 token from the identity provider; ``preferred_username``
    (the RMF api-server's convention) names the user."""
    claims = _decode(token, public_key, "RS256", audience, issuer, now)
    username = claims.get("preferred_username")
    if not isinstance(username, str) or not re.match(USERNAME_PATTERN, username):
        raise BadToken("the token has no usable preferred_username")
    return claims


IN_FLIGHT_RETRY_S: Final = 1.0
"""Seconds to wait when the limit is reached only by attempts still being checked."""
MAX_TRACKED_KEYS: Final = 10_000
"""Usernames and addresses a :class:`FailureWindow` remembers at once; the least recently
seen are forgotten first, so a flood of made-up names cannot exhaust memory."""


class FailureWindow:
    """Failed logins per key (a username, or a client address) over a sliding window.

    An attempt may go ahead while the failures of the last ``window`` plus the attempts
    still being checked stay under ``limit``; counting those in flight keeps a burst of
    simultaneous guesses to the limit too. The time is passed in.
    """

    def __init__(self, limit: int, window: timedelta, max_keys: int = MAX_TRACKED_KEYS) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._in_flight: Counter[str] = Counter()

    def retry_after(self, key: str, now: datetime) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        failures = self._failures.get(key)
        if failures is not None:
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[key]
                failures = None
        failed = len(failures) if failures else 0
        if failed + self._in_flight[key] < self.limit:
            return None
        keep = self.limit - self._in_flight[key] - 1  # failures that may remain for one more try
        if failures is None or keep < 0 or failed <= keep:
            return IN_FLIGHT_RETRY_S  # only attempts under way hold it back: they end soon
        return (failures[failed - keep - 1] + self.window - now).total_seconds()

    def begin(self, key: str) -> None:
        self._in_flight[key] += 1

    def end(self, key: str, now: datetime, *, failed: bool) -> None:
        """An attempt begun for ``key`` ended; ``failed`` counts it in the window."""
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
        if failed:
            self._failures.setdefault(key, deque()).append(now)
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
