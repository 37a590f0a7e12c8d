"""Service configuration: one typed object, validated once at start-up.

A site writes a Python file that exports ``config`` (a dict) and names it with
``RMF_TASK_SCHEDULER_CONFIG``; keys it leaves out keep their defaults.  Scalar keys can
also be overridden from the environment as ``RMF_TASK_SCHEDULER_<KEY>`` (for example
``RMF_TASK_SCHEDULER_LOG_LEVEL=DEBUG``), which wins over the file.  Unknown keys and bad
values stop start-up with a message naming the key.  ``default_config.py`` at the top of
the repository lists every option with its default and a comment; a test keeps the two
in step.
"""

from __future__ import annotations

import os
import re
import runpy
from collections.abc import Mapping
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from task_scheduler.domain.allowlist import DEFAULT_ALLOWLIST, check_entry
from task_scheduler.domain.auth import USERNAME_PATTERN, Role, acceptable_password
from task_scheduler.domain.rmf_schema import check_extra_categories
from task_scheduler.domain.targets import RmfHttpTarget, TargetConfig

CONFIG_ENV = "RMF_TASK_SCHEDULER_CONFIG"
ENV_PREFIX = "RMF_TASK_SCHEDULER_"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class Settings(BaseModel):
    """Every option of the service (see ``default_config.py`` for the commented list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8010, ge=1, le=65535)
    db_url: str = "sqlite://task_scheduler.sqlite3"
    migrate_on_start: bool = True
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    cors_origins: list[str] = Field(default_factory=list, max_length=100)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1 << 30)
    api_concurrency: int = Field(4, ge=1, le=10000)
    request_cpu_s: float = Field(5.0, gt=0, le=3600)
    expansion_horizon_s: int = Field(86400, ge=60, le=366 * 86400)
    expansion_batch: int = Field(100, ge=1, le=10000)
    expansion_poll_s: float = Field(60.0, gt=0, le=3600)
    rmf_extra_categories: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    targets: dict[str, TargetConfig] = Field(
        default_factory=lambda: {"default": RmfHttpTarget(base_url="http://127.0.0.1:8000")}
    )
    replica_id: str | None = Field(None, min_length=1, max_length=64)
    requester: str = Field("task_scheduler", min_length=1, max_length=128)
    dispatch_concurrency: int = Field(96, ge=1, le=10000)
    dispatch_batch: int = Field(200, ge=1, le=10000)
    lease_s: float = Field(10.0, ge=1, le=3600)
    dispatch_poll_s: float = Field(30.0, gt=0, le=3600)
    dispatch_claim_ahead_s: float = Field(0.25, ge=0, le=5)
    shutdown_grace_s: float = Field(10.0, ge=0, le=600)
    run_dispatcher: bool = True
    runs_retention_days: float | None = Field(None, gt=0, le=36500)
    tasks_retention_days: float | None = Field(None, gt=0, le=36500)
    outbound_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWLIST), max_length=1000)
    auth_enabled: bool = False
    auth_jwt_secret: str | None = Field(None, min_length=32)
    auth_token_ttl_s: int = Field(3600, ge=60, le=30 * 86400)
    auth_feed_token_ttl_s: int = Field(365 * 86400, ge=3600, le=10 * 365 * 86400)
    auth_admin_username: str | None = Field(None, pattern=USERNAME_PATTERN)
    auth_admin_password: str | None = None
    auth_external_public_key: str | None = None
    auth_external_audience: str = Field("rmf_api_server", min_length=1)
    auth_external_issuer: str | None = Field(None, min_length=1)
    auth_external_role_claim: str | None = Field(None, min_length=1)
    auth_external_role_map: dict[str, Role] = Field(
        default_factory=lambda: {role.value: role for role in Role}
    )
    auth_external_default_role: Role | None = Role.viewer
    auth_login_max_failures: int = Field(5, ge=1, le=1000)
    auth_login_max_failures_per_address: int = Field(20, ge=1, le=100000)
    auth_login_window_s: float = Field(300.0, gt=0, le=86400)
    auth_login_concurrency: int = Field(2, ge=1, le=64)
    auth_login_wait_s: float = Field(5.0, ge=0, le=60)
    secrets_key: str | None = Field(None, min_length=1, repr=False)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("rmf_extra_categories")
    @classmethod
    def _usable_categories(cls, value: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any] | None]:
        check_extra_categories(value)
        return value

    @field_validator("outbound_allowlist")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        return [check_entry(entry) for entry in value]

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path, or '*'")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    _strong_enough = field_validator("auth_admin_password")(acceptable_password)

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, value: str | None) -> str | None:
        from cryptography.fernet import Fernet

        for n, key in enumerate(value.split(",") if value else (), 1):
            try:
                Fernet(key.strip())
            except ValueError:
                raise ValueError(
                    f"key {n} is not a Fernet key (32 url-safe base64-encoded bytes; make one with python -c "
                    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
                ) from None
        return value

    @property
    def secrets_keys(self) -> list[str]:
        """The keys of ``secrets_key``: the first encrypts, all decrypt."""
        return [key.strip() for key in self.secrets_key.split(",")] if self.secrets_key else []

    @field_validator("auth_external_public_key")
    @classmethod
    def _rsa_public_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(value.encode())
        except ValueError:
            raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----...)") from None
        if not isinstance(key, RSAPublicKey):
            raise ValueError("RS256 needs an RSA public key")
        return value

    @model_validator(mode="after")
    def _claim_ahead_within_lease(self) -> Settings:
        if self.dispatch_claim_ahead_s > self.lease_s / 4:
            raise ValueError(
                f"dispatch_claim_ahead_s ({self.dispatch_claim_ahead_s:g}) must be at most a quarter of "
                f"lease_s ({self.lease_s:g}): a claim waits that long for its time under its lease"
            )
        return self

    @model_validator(mode="after")
    def _auth_complete(self) -> Settings:
        if self.auth_enabled and self.auth_jwt_secret is None:
            raise ValueError(
                "auth_jwt_secret: required when auth_enabled is True (at least 32 random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if (self.auth_admin_username is None) != (self.auth_admin_password is None):
            raise ValueError("auth_admin_username and auth_admin_password go together: set both or neither")
        if self.auth_external_public_key is not None and self.auth_external_issuer is None:
            raise ValueError("auth_external_issuer: required with auth_external_public_key")
        return self

    @field_validator("db_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in {"sqlite", "postgres", "asyncpg", "psycopg", "mysql"}:
            raise ValueError(
                f"unsupported database scheme {scheme!r}; use sqlite://, postgres:// or mysql://"
            )
        return value


_SCALARS = (str, int, float, bool)
_SCALAR_KEYS = {
    name
    for name, field in Settings.model_fields.items()
    if field.annotation in _SCALARS
    or name in ("log_level", "log_format")
    or (  # an optional scalar, e.g. str | None; not dict[str, ...], whose args are also types
        get_origin(field.annotation) in (Union, UnionType)
        and any(t in _SCALARS for t in get_args(field.annotation))
    )
}


def build_settings(
    values: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge a config dict with environment overrides and validate the result."""
    merged: dict[str, Any] = dict(values or {})
    env = os.environ if environ is None else environ
    for key in _SCALAR_KEYS:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None:
            merged[key] = raw
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "config"
            reason = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{key}: {reason}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the file named by ``RMF_TASK_SCHEDULER_CONFIG`` (if any) and validate it."""
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV)
    values: Mapping[str, Any] = {}
    if path:
        try:
            namespace = runpy.run_path(path)
        except FileNotFoundError:
            raise ConfigError(f"{CONFIG_ENV}: no such file {path!r}") from None
        except Exception as exc:  # a config file is user code: report, don't crash obscurely
            raise ConfigError(f"{CONFIG_ENV}: {path!r} failed to load: {exc!r}") from exc
        if not isinstance(namespace.get("config"), Mapping):
            raise ConfigError(f"{CONFIG_ENV}: {path!r} must define a dict named 'config'")
        values = namespace["config"]
    return build_settings(values, env)
