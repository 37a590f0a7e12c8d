"""Bearer credentials for a fleet manager, as the rmf-web api-server checks them.

A target either carries a ready token or the api-server's HS256 shared secret, from which
short-lived tokens are minted here (and cached, so not every request signs one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import jwt

from task_scheduler.domain.targets import RmfHttpTarget, RmfWsTarget

TOKEN_LIFETIME_S: Final = 600
RENEW_BEFORE_S: Final = 60
"""A cached token with less than this left is replaced, so none expires in flight."""


class BearerAuth:
    """The ``Authorization`` header for a target, or none when it has no credentials."""

    def __init__(
        self, config: RmfHttpTarget | RmfWsTarget, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._token = config.token
        self._secret = config.jwt_secret
        self._audience = config.jwt_audience
        self._issuer = config.jwt_issuer
        self._username = config.username
        self._clock = clock
        self._minted: str | None = None
        self._expires = 0

    @property
    def mode(self) -> str:
        """``token``, ``jwt`` or ``none``: what kind of credential is configured, never its value."""
        if self._token is not None:
            return "token"
        return "jwt" if self._secret is not None else "none"

    def header(self) -> str | None:
        """The header's value (``Bearer ...``), None when there are no credentials."""
        if self._token is not None:
            return f"Bearer {self._token}"
        if self._secret is None:
            return None
        now = int(self._clock())
        if self._minted is None or self._expires - now < RENEW_BEFORE_S:
            self._expires = now + TOKEN_LIFETIME_S
            claims = {
                "aud": self._audience,
                "iss": self._issuer,
                "preferred_username": self._username,
                "iat": now,
                "exp": self._expires,
            }
            self._minted = jwt.encode(claims, self._secret, algorithm="HS256")
        return f"Bearer {self._minted}"

    def headers(self) -> dict[str, str]:
        """``{"Authorization": ...}``, or an empty dict when there are no credentials."""
        value = self.header()
        return {} if value is None else {"Authorization": value}

    def __repr__(self) -> str:
        return f"BearerAuth(mode={self.mode!r}, username={self._username!r})"
