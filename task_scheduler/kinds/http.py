"""``http``: call a URL (a web hook, a health check, an API) and keep what it answered.

The answer goes into the run: status, a bounded body excerpt, the JSON when the body is
JSON, and the matches of ``regex``. Patterns run with a time limit
(:data:`REGEX_TIMEOUT_S`), so a hostile one cannot stall the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from task_scheduler.domain.targets import Headers, check_headers, check_url
from task_scheduler.kinds.base import Occurrence, Problems, TaskKind

REGEX_TIMEOUT_S = 0.1
"""The longest a pattern may search one answer before the attempt fails."""
RESEND_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Idempotent methods (RFC 9110): an attempt whose outcome is unknown may be repeated."""

DIRECT_TARGET = "@url"
"""The target of an http task that gives its own ``url``: no configuration, the allowlist only."""

Status = Annotated[int, Field(ge=100, le=599)]


class HttpTask(BaseModel):
    """Call a URL: through an ``http`` target (``path`` under its base URL, with its headers
    and secrets), or directly (``url``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["http"]
    target: str | None = Field(
        None, min_length=1, max_length=128, description="An http target; without one, `url` is required."
    )
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str | None = Field(
        None,
        max_length=2048,
        examples=["http://127.0.0.1:8080/health"],
        description="Absolute URL (no target).",
    )
    path: str | None = Field(
        None,
        max_length=2048,
        examples=["/v1/status?verbose=1"],
        description="Added to the target's base URL.",
    )
    headers: Headers = Field(default_factory=dict, description="Headers of this call (not secret).")
    body: Any = Field(None, description="A string is sent as text, anything else as JSON.")
    timeout_s: float | None = Field(
        None, gt=0, le=300, description="Seconds the call may take; default the target's, else 10."
    )
    regex: str | None = Field(
        None,
        max_length=1000,
        description="Searched in the answer's body; the matches go into the run. Time-limited.",
    )
    fail_if_no_match: bool = Field(False, description="A body the regex does not match fails the attempt.")
    expect_status: list[Status] | None = Field(
        None, max_length=50, description="Statuses that count as success; default any 2xx."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, ("http", "https"), query=True)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @model_validator(mode="after")
    def _where(self) -> HttpTask:
        if self.target is None and self.path is not None:
            raise ValueError("path needs a target; without one, give url")
        if self.target is not None and self.url is not None:
            raise ValueError("url goes without a target; with a target, give path")
        if self.target is None and self.url is None:
            raise ValueError("give url, or a target and a path")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError("path must start with /")
        if self.fail_if_no_match and self.regex is None:
            raise ValueError("fail_if_no_match needs a regex")
        return self


class HttpKind(TaskKind):
    name = "http"
    spec = HttpTask
    target_kinds = frozenset({"http"})
    direct_target = DIRECT_TARGET

    def check(self, task: BaseModel) -> Problems:
        assert isinstance(task, HttpTask)
        if task.regex is None:
            return []
        try:
            regex.compile(task.regex)
        except (regex.error, OverflowError, RecursionError) as exc:
            return [(("regex",), f"not a valid pattern: {exc}")]
        return []

    def urls(self, task: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        assert isinstance(task, HttpTask)
        return [(("url",), task.url)] if task.url is not None else []

    def build(self, document: dict[str, Any], occurrence: Occurrence) -> dict[str, Any]:
        """The call, plus headers naming the task, so the receiver can tell a repeat."""
        headers = {
            **document.get("headers", {}),
            "X-Task-Scheduler-Task": occurrence.task_id,
            "X-Task-Scheduler-Scheduled-At": occurrence.scheduled_at.isoformat(),
        }
        return {key: value for key, value in {**document, "headers": headers}.items() if key != "kind"}

    def resend_safe(self, document: dict[str, Any]) -> bool:
        return document.get("method", "GET") in RESEND_SAFE_METHODS
