"""Targets' secrets encrypted in the database, with keys from the configuration.

A stored target configuration keeps its ordinary fields as they are and its secret fields
(the model's ``secret_fields``) in one Fernet token under ``"_sealed"``, so the row shows
what the target is but not its credentials. ``secrets_key`` holds one key or several,
comma-separated: the first encrypts, every one decrypts, which is how keys are rotated.
Without a key, secrets are stored in plain text, as rows written before encryption were;
such rows are read as they are and sealed when next written or rotated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from task_scheduler.domain.errors import Conflict

SEALED: Final = "_sealed"
"""The key of the encrypted secrets in a stored configuration; no model field can start with _."""


class SecretsUnreadable(Conflict):
    """A stored target's secrets were sealed with a key that is not in ``secrets_key`` (409)."""


class SecretBox:
    """Seals and opens the secrets of stored target configurations."""

    def __init__(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None
        self._first = Fernet(keys[0]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, config: Mapping[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
        """``config`` as it is stored: its set secret fields encrypted under :data:`SEALED`
        (as they are, without a key)."""
        stored = dict(config)
        if self._fernet is None:
            return stored
        secrets = {name: stored.pop(name) for name in secret_fields if stored.get(name)}
        if secrets:
            stored[SEALED] = self._fernet.encrypt(json.dumps(secrets).encode()).decode()
        return stored

    def open(self, stored: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The configuration with its secrets back in place, from a sealed or a plain row."""
        config = dict(stored)
        token = config.pop(SEALED, None)
        if token is None:
            return config
        if self._fernet is None:
            raise SecretsUnreadable(f"target {name!r} has encrypted secrets, and secrets_key is not set")
        try:
            config.update(json.loads(self._fernet.decrypt(token.encode())))
        except InvalidToken:
            raise SecretsUnreadable(
                f"target {name!r} has secrets encrypted with a key that is not in secrets_key"
            ) from None
        return config

    def current(self, stored: Mapping[str, Any], secret_fields: Iterable[str]) -> bool:
        """Whether a stored configuration is as :meth:`seal` would write it now: sealed with
        the first key (or, without a key, plain), with no secret left in plain text."""
        fields = list(secret_fields)
        if self._first is None:
            return SEALED not in stored
        if any(stored.get(name) for name in fields):
            return False
        token = stored.get(SEALED)
        if token is None:
            return True
        try:
            self._first.decrypt(token.encode())
        except InvalidToken:
            return False
        return True
