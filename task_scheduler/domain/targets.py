"""Target configurations: where the dispatcher hands a task to an Open-RMF fleet manager.

A target is a named, reusable connection. Its secrets (``token``, ``jwt_secret``) stay
server-side: they are hidden from ``repr()``, left out of :func:`public_view` (what the
API shows), and the text of validation errors never echoes the input, since it may hold them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

SECRET_FIELDS = ("token", "jwt_secret")

_Text = Annotated[str, Field(min_length=1, max_length=256)]


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    """A URL the transports can use as is, or ``ValueError`` saying what is wrong with it.

    Credentials in the URL are refused: they would show wherever the URL does.
    """
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it validates it
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"the scheme must be {' or '.join(schemes)}")
    if not parts.hostname:
        raise ValueError("a host is required")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the URL: use token or jwt_secret")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("a query or fragment is not allowed")
    if port == 0:
        raise ValueError("the port must be between 1 and 65535")
    return value


class _RmfTarget(BaseModel):
    """Authentication and timeout, shared by both RMF targets."""

    # hide_input_in_errors: a validation error would otherwise print the whole input, secrets included.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

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
        return _check_url(value, ("http", "https")).rstrip("/")


class RmfWsTarget(_RmfTarget):
    """An RMF websocket bridge speaking ``{request_id, json_msg}`` each way."""

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
        return _check_url(value, ("ws", "wss"))


TargetConfig = Annotated[RmfHttpTarget | RmfWsTarget, Field(discriminator="kind")]
target_adapter: TypeAdapter[RmfHttpTarget | RmfWsTarget] = TypeAdapter(
    TargetConfig, config=ConfigDict(title="target", hide_input_in_errors=True)
)
"""Validates a target configuration. Its errors' text never echoes the input, but
``ValidationError.errors()`` still carries it: pass ``include_input=False`` where they leave
the process. A model embedding :data:`TargetConfig` needs ``hide_input_in_errors`` too."""


def public_view(config: RmfHttpTarget | RmfWsTarget) -> dict[str, Any]:
    """The configuration as the API may show it: secrets left out, and which ones are set."""
    view = config.model_dump(mode="json", exclude=set(SECRET_FIELDS))
    view["secrets_set"] = [name for name in SECRET_FIELDS if getattr(config, name) is not None]
    return view
