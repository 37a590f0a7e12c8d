"""Target configurations: named, reusable connections the dispatcher sends tasks through.

Built in: an Open-RMF api-server (``rmf_http``) or websocket bridge (``rmf_ws``), a web
service (``http``), a database (``database``), a directory (``directory``); plug-in
target kinds arrive as
:class:`PluginTarget` and are validated by their own model (see ``kinds.registry``).
A target's secrets (each model's ``secret_fields``) stay server-side: they are hidden
from ``repr()``, left out of :func:`public_view` (what the API shows), and the text of
validation errors never echoes the input, since it may hold them.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from task_scheduler.domain.allowlist import normalise_host
from task_scheduler.domain.sql import Dialect, SqlError, parse

_Text = Annotated[str, Field(min_length=1, max_length=256)]


def _check_host(host: str | None) -> None:
    if not host:
        raise ValueError("a host is required")
    try:
        normalise_host(host)
    except ValueError as error:
        raise ValueError(f"the host {host!r} {error}") from None


def check_url(value: str, schemes: tuple[str, ...], *, query: bool = False) -> str:
    """A URL the transports can use as is, or ``ValueError`` saying what is wrong with it.

    Credentials in the URL are refused: they would show wherever the URL does. So is a host
    that cannot be read as one (see :func:`~task_scheduler.domain.allowlist.normalise_host`).
    """
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it validates it
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"the scheme must be {' or '.join(schemes)}")
    _check_host(parts.hostname)
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the URL: use a target's secrets")
    if parts.fragment or value.endswith("#") or (not query and (parts.query or value.endswith("?"))):
        raise ValueError("a query or fragment is not allowed" if not query else "a fragment is not allowed")
    if port == 0:
        raise ValueError("the port must be between 1 and 65535")
    return value


class _Target(BaseModel):
    # hide_input_in_errors: a validation error would otherwise print the whole input, secrets included.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields the API accepts but never shows."""

    url_field: ClassVar[str | None] = None
    """The field naming the host this target connects to."""

    def outbound_urls(self) -> list[tuple[tuple[str, ...], str]]:
        """The URLs of the hosts this target connects to, each with its field."""
        return [((self.url_field,), getattr(self, self.url_field))] if self.url_field else []


class _RmfTarget(_Target):
    """Authentication and timeout, shared by both RMF targets."""

    secret_fields: ClassVar[tuple[str, ...]] = ("token", "jwt_secret")

    token: str | None = Field(
        None, min_length=1, max_length=8192, repr=False, description="A ready bearer token (secret)."
    )
    jwt_secret: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        repr=False,
        description="Mint HS256 tokens signed with this shared secret (secret).",
    )
    jwt_audience: _Text = "rmf_api_server"
    jwt_issuer: _Text = "rmf_task_scheduler"
    username: _Text = Field("task_scheduler", description="The preferred_username claim of minted tokens.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds to wait for the fleet.")

    @model_validator(mode="after")
    def _one_credential(self) -> _RmfTarget:
        if self.token is not None and self.jwt_secret is not None:
            raise ValueError("token and jwt_secret are mutually exclusive: set one of them, or neither")
        return self


class RmfHttpTarget(_RmfTarget):
    """An rmf-web api-server: ``POST {base_url}/tasks/dispatch_task`` and friends."""

    url_field: ClassVar[str | None] = "base_url"

    kind: Literal["rmf_http"] = "rmf_http"
    base_url: str = Field(
        max_length=2048,
        examples=["http://localhost:8000"],
        description="http(s)://host[:port][/prefix]; a trailing slash is dropped.",
    )
    max_connections: int = Field(
        8,
        ge=1,
        le=256,
        description=(
            "Requests in flight to this fleet at once, each on a connection of its own that is kept"
            " for reuse; more wait their turn, and their timeout starts once they are sent."
            " A handful keeps a fast fleet busy; raise it for a fleet that takes seconds to answer."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_url(value, ("http", "https")).rstrip("/")


class RmfWsTarget(_RmfTarget):
    """An RMF websocket bridge speaking ``{request_id, json_msg}`` each way."""

    url_field: ClassVar[str | None] = "url"

    kind: Literal["rmf_ws"] = "rmf_ws"
    url: str = Field(
        max_length=2048, examples=["ws://localhost:8000/ws"], description="ws(s)://host[:port]/path"
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="Ceiling of the delay between reconnection attempts."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("ws", "wss"))


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
Headers = dict[Annotated[str, Field(pattern=_HEADER_NAME.pattern)], Annotated[str, Field(max_length=8192)]]


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > 50:
        raise ValueError("at most 50 headers")
    for value in headers.values():
        if "\r" in value or "\n" in value:
            raise ValueError("a header value may not contain a line break")
    return headers


class HttpTarget(_Target):
    """A web service: a base URL that ``http`` tasks add their ``path`` to, with the headers
    and credentials every call carries."""

    secret_fields: ClassVar[tuple[str, ...]] = ("token", "secret_headers")
    url_field: ClassVar[str | None] = "base_url"

    kind: Literal["http"] = "http"
    base_url: str = Field(
        max_length=2048,
        examples=["https://status.example.com/api"],
        description="http(s)://host[:port][/prefix]; a trailing slash is dropped.",
    )
    headers: Headers = Field(default_factory=dict, description="Headers sent with every call (shown).")
    secret_headers: Headers = Field(
        default_factory=dict,
        repr=False,
        description="Headers sent with every call and never shown, e.g. X-Api-Key (secret).",
    )
    token: str | None = Field(
        None, min_length=1, max_length=8192, repr=False, description="Sent as a bearer token (secret)."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds a call may take, unless the task says.")
    max_connections: int = Field(
        8, ge=1, le=256, description="Calls in flight at once; more wait their turn."
    )
    verify_tls: bool = Field(True, description="Check the server's certificate (https).")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_url(value, ("http", "https")).rstrip("/")

    @field_validator("headers", "secret_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)


DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024


class DirectoryTarget(_Target):
    """A directory that ``file`` tasks read from and, when ``writable``, write to. They reach
    nothing outside it: see ``transports.file``.

    Whether the directory exists is checked at each run, not here: a stored target is
    validated whenever it is read, and a share that is not mounted yet must not make the
    target unreadable.
    """

    kind: Literal["directory"] = "directory"
    path: str = Field(
        min_length=1,
        max_length=4096,
        examples=["/srv/reports"],
        description="Absolute path of the directory; file tasks stay inside it (checked at each run).",
    )
    writable: bool = Field(False, description="Whether file tasks may write here (read-only by default).")
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES,
        ge=1,
        le=1024 * 1024 * 1024,
        description="The largest file read or written here, in bytes; a larger one fails the attempt.",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("a path may not contain NUL")
        if not value.startswith("/"):
            raise ValueError("the path must be absolute")
        return os.path.normpath(value)


DRIVERS = {"postgres": ("asyncpg", "postgres"), "mysql": ("asyncmy", "mysql"), "sqlite": ("aiosqlite", None)}
"""For each database: its driver module and the extra of this package that installs it."""
_SCHEMES = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def dialect_of(url: str) -> Dialect:
    """Which database a (checked) database target URL names."""
    return _SCHEMES[url.split("://", 1)[0]]  # type: ignore[return-value]


def sqlite_file(url: str) -> str:
    """The file a ``sqlite:`` URL names: ``sqlite:///abs/path`` and ``sqlite:////abs/path``
    both name ``/abs/path`` (RFC 8089 writes a local path after an empty host either way)."""
    path = urlsplit(url).path
    return "/" + path.lstrip("/") if path.startswith("/") else path


def check_database_url(value: str) -> str:
    """A database URL without a password, or ``ValueError``: postgres[ql]://, mysql://
    (user@host[:port]/database) or sqlite:///absolute/path (or sqlite:////absolute/path)."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # reading it validates it
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    dialect = _SCHEMES.get(parts.scheme)
    if dialect is None:
        raise ValueError("the scheme must be postgres://, mysql:// or sqlite:///")
    if parts.password is not None or "password" in parts.query.lower():
        raise ValueError("the password does not belong in the URL: give it as password (secret)")
    if parts.fragment or value.endswith("#"):
        raise ValueError("a fragment is not allowed")
    if dialect == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise ValueError("a SQLite database is sqlite:///absolute/path (or sqlite:////absolute/path)")
        return value
    _check_host(parts.hostname)
    if not parts.path.strip("/"):
        raise ValueError("name the database: ...://user@host/database")
    if dialect == "mysql" and parts.query:
        raise ValueError("a mysql:// URL takes no query options")
    module, extra = DRIVERS[dialect]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"the {module} driver is not installed: pip install 'rmf-task-scheduler[{extra}]'")
    return value


class DatabaseQuery(BaseModel):
    """One statement an admin allows: rules pick it by name and give its ``:name`` parameters."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(
        min_length=1,
        max_length=100_000,
        examples=["DELETE FROM audit_log WHERE created_at < now() - make_interval(days => :days)"],
        description="One statement; parameters written :name (bound, never pasted into the text).",
    )
    mode: Literal["read", "write"] = Field(
        description="read: the rows are kept in the run (read-only transaction); write: the rows affected."
    )
    max_rows: int = Field(100, ge=1, le=10_000, description="The most rows of a read kept in a run.")


class DatabaseTarget(_Target):
    """A database that ``sql`` tasks run the queries configured here against; nothing else."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    url_field: ClassVar[str | None] = "url"

    kind: Literal["database"] = Field("database", description="A database for sql tasks.")
    url: str = Field(
        max_length=2048,
        examples=["postgres://reporter@db.example.com:5432/reports", "sqlite:////var/lib/site/jobs.sqlite3"],
        description=(
            "postgres://, mysql:// (user@host[:port]/database) or sqlite:///absolute/path (four slashes"
            " name the same file); no password"
            " (see password). Network hosts must be in outbound_allowlist."
        ),
    )
    password: str | None = Field(
        None, min_length=1, max_length=1024, repr=False, description="The database password (secret)."
    )
    queries: dict[Annotated[str, Field(pattern=_IDENTIFIER)], DatabaseQuery] = Field(
        min_length=1,
        max_length=200,
        description="The statements rules may run, by name. There is no way to send other SQL.",
    )
    timeout_s: float = Field(
        60.0, gt=0, le=86400, description="Seconds a run may take; the statement is cancelled after."
    )
    max_connections: int = Field(
        4, ge=1, le=64, description="Runs against this database at once, a connection each; more wait."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_database_url(value)

    def outbound_urls(self) -> list[tuple[tuple[str, ...], str]]:
        """A server's URL; a SQLite file connects to no host."""
        return [] if dialect_of(self.url) == "sqlite" else super().outbound_urls()

    @field_validator("queries")
    @classmethod
    def _queries_parse(
        cls, value: dict[str, DatabaseQuery], info: ValidationInfo
    ) -> dict[str, DatabaseQuery]:
        if "url" not in info.data:
            return value  # the URL's own error says what is wrong
        dialect = dialect_of(info.data["url"])
        for name, query in value.items():
            try:
                parse(query.sql, dialect)
            except SqlError as error:
                raise ValueError(f"query {name!r}: {error}") from None
        return value


BUILTIN_TARGET_KINDS = ("rmf_http", "rmf_ws", "http", "database", "directory")


class PluginTarget(BaseModel):
    """A target of a kind a plug-in adds; its own model validates it (see ``kinds.registry``)."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    kind: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("kind")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_TARGET_KINDS:
            raise ValueError(f"{value} is a built-in kind")
        return value


def _target_tag(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in BUILTIN_TARGET_KINDS else "plugin"


TargetConfig = Annotated[
    Annotated[RmfHttpTarget, Tag("rmf_http")]
    | Annotated[RmfWsTarget, Tag("rmf_ws")]
    | Annotated[HttpTarget, Tag("http")]
    | Annotated[DirectoryTarget, Tag("directory")]
    | Annotated[DatabaseTarget, Tag("database")]
    | Annotated[PluginTarget, Tag("plugin")],
    Discriminator(_target_tag),
]
target_adapter: TypeAdapter[Any] = TypeAdapter(
    TargetConfig, config=ConfigDict(title="target", hide_input_in_errors=True)
)
"""Validates a target configuration. Its errors' text never echoes the input, but
``ValidationError.errors()`` still carries it: pass ``include_input=False`` where they leave
the process. A model embedding :data:`TargetConfig` needs ``hide_input_in_errors`` too."""


def outbound_urls(config: BaseModel) -> list[tuple[tuple[str, ...], str]]:
    """The URLs a target of any kind connects to: a plug-in target's model may list its own
    with an ``outbound_urls()`` method, as the built-in ones do."""
    listed = getattr(config, "outbound_urls", None)
    return listed() if callable(listed) else []


def public_view(config: BaseModel) -> dict[str, Any]:
    """The configuration as the API may show it: secrets left out, and which ones are set."""
    secrets = getattr(config, "secret_fields", ())
    view = config.model_dump(mode="json", exclude=set(secrets))
    view["secrets_set"] = [name for name in secrets if getattr(config, name)]
    return view
