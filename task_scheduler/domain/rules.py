"""Rule documents as the API accepts and returns them.

A rule is *what* (``task``: a template and the target that receives it), *when*
(``schedule`` in the rule's IANA ``timezone``) and *how* (``policy``), plus free-form
``metadata`` and an ``enabled`` flag.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from task_scheduler.domain.schedule import Schedule

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RmfTaskRequest(_Strict):
    """The part of an Open-RMF ``task_request`` a rule fixes; the dispatcher adds the rule and
    occurrence labels, and ``requester`` and the two times where the request leaves them out."""

    category: str = Field(min_length=1, max_length=128, examples=["clean"])
    description: Any = Field(
        examples=[{"zone": "lobby"}],
        description="Must match the fleet's schema for the category (Open-RMF task_description__<category>).",
    )
    priority: dict[str, Any] | None = Field(None, examples=[{"type": "binary", "value": 1}])
    fleet_name: str | None = Field(None, max_length=128)
    labels: list[Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=list, max_length=64
    )
    requester: str | None = Field(
        None, max_length=128, description="Sent as given; without it, the service's `requester`."
    )
    unix_millis_request_time: int | None = Field(
        None, ge=0, description="Sent as given; without it, the time the occurrence is sent."
    )
    unix_millis_earliest_start_time: int | None = Field(
        None, ge=0, description="Sent as given; without it, the occurrence time."
    )


class RmfTask(_Strict):
    """Send an Open-RMF task request to an RMF target (an api-server or a websocket bridge)."""

    kind: Literal["rmf"] = "rmf"
    target: str = Field("default", min_length=1, max_length=128, description="Name of an RMF target.")
    robot: str | None = Field(
        None, max_length=128, description="Send to this robot directly (a robot_task_request); needs fleet."
    )
    fleet: str | None = Field(None, max_length=128, description="The fleet of `robot`.")
    request: RmfTaskRequest

    @model_validator(mode="after")
    def _robot_with_fleet(self) -> RmfTask:
        if (self.robot is None) != (self.fleet is None):
            raise ValueError("robot and fleet go together: name both or neither")
        return self


class PluginTask(BaseModel):
    """A task of a kind a plug-in adds: its own model validates it (see ``kinds.registry``)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    target: str | None = Field(None, min_length=1, max_length=128)

    @field_validator("kind")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_KINDS:
            raise ValueError(f"{value} is a built-in kind")
        return value


def _task_tag(value: Any) -> str:
    kind = value.get("kind", "rmf") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in BUILTIN_KINDS else "plugin"


def _task_union() -> Any:
    # Imported here: the kinds' modules import this one for RmfTask.
    from task_scheduler.kinds.file import FileTask
    from task_scheduler.kinds.http import HttpTask
    from task_scheduler.kinds.sql import SqlTask

    return Annotated[
        Annotated[RmfTask, Tag("rmf")]
        | Annotated[HttpTask, Tag("http")]
        | Annotated[FileTask, Tag("file")]
        | Annotated[SqlTask, Tag("sql")]
        | Annotated[PluginTask, Tag("plugin")],
        Discriminator(_task_tag),
    ]


BUILTIN_KINDS = ("rmf", "http", "sql", "file")


class Policy(_Strict):
    """How the dispatcher treats this rule's occurrences."""

    misfire_grace_s: float = Field(
        60.0,
        ge=0,
        le=7 * 86400,
        description="How late an occurrence may still run (after downtime or retrying); later is missed.",
    )
    catch_up: Literal["all", "latest", "none"] = Field(
        "latest", description="Which occurrences missed within the grace run after downtime."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts per occurrence before it fails.")
    retry_backoff_s: float = Field(5.0, ge=0, le=3600, description="First retry delay; doubles each attempt.")
    retry_backoff_max_s: float = Field(300.0, ge=0, le=86400, description="Ceiling of the retry delay.")
    lead_time_s: float = Field(
        0.0, ge=0, le=86400, description="Send this early, with the occurrence as earliest start time."
    )
    overlap: Literal["allow", "skip"] = Field(
        "allow", description="What to do when the previous occurrence is still being dispatched."
    )
    max_execution_time_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="Give up an attempt that takes longer (a timeout); default: the kind's and target's own.",
    )


TaskSpec = _task_union()


class RuleSpec(_Strict):
    """A rule as a client writes it (create, replace, preview)."""

    name: Name
    description: str = Field("", max_length=10000)
    timezone: str | None = Field(
        None, examples=["Europe/Berlin"], description="IANA zone; defaults to the service's."
    )
    enabled: bool = True
    schedule: Schedule
    task: TaskSpec = Field(description="What to do: a document of one task kind (rmf, http, sql, ...).")
    policy: Policy = Field(default_factory=Policy)
    metadata: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = Field(
        None,
        max_length=128,
        validation_alias=AliasChoices("channel", "send_to"),
        description="Event channel this rule's results are published on (/events?channel=); also `send_to`.",
    )


class NewRule(RuleSpec):
    """A rule to create, with what only creation can say."""

    run_now: bool = Field(False, description="Also run once at creation, besides the schedule.")
    start_delay_s: float | None = Field(
        None,
        ge=0,
        le=366 * 86400,
        description="Start this many seconds after creation (instead of schedule.start).",
    )


class Rule(RuleSpec):
    """A stored rule: the spec with its zone and start resolved, plus bookkeeping."""

    model_config = ConfigDict(extra="ignore")

    id: int
    timezone: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None = Field(None, description="Who created the rule; null when authentication is off.")
    updated_by: str | None = Field(
        None, description="Who last changed the rule; null when authentication is off."
    )
    next_at: datetime | None = Field(None, description="Next occurrence from now, in UTC.")


class DroppedException(BaseModel):
    """A one-off change of an occurrence that an edit of the series removed with its day."""

    id: str = Field(description="The occurrence's id before the edit.")
    original_at: datetime = Field(description="The occurrence it replaced (UTC).")
    scheduled_at: datetime = Field(description="When it was to run (UTC); differs once moved.")
    status: str = Field(description="scheduled (disabled, moved or with its own request) or skipped.")


class ReplacedRule(Rule):
    """A rule after an edit of its series."""

    dropped_exceptions: list[DroppedException] = Field(
        default_factory=list,
        description="Skipped, disabled, moved or re-worded occurrences whose day (or slot in the day)"
        " the new series no longer has, or has only in the past; they are gone.",
    )
