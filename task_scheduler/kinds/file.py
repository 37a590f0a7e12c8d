"""``file``: read a file, write one, or copy one, between directory targets and URLs.

A directory end names a ``directory`` target and a path inside it, which may carry the
occurrence's time (``{scheduled_at:%Y%m%dT%H%M}``, see ``domain.files``); a URL end is
fetched (GET) or sent to (PUT or POST) through the service's HTTP session, so the outbound
allowlist applies. What was read or written goes into the run: size and SHA-256 always,
a bounded excerpt of the content when ``keep`` is ``content``.

The task's ``target`` (what the dispatcher counts a task against) is set from its ends:
the directory it writes to, else the one it reads from; a task of URLs only goes through
:data:`DIRECT_TARGET`. The source directory of a copy between two directories is the
task's other target (:meth:`FileKind.other_targets`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from task_scheduler.domain.files import check_template, render
from task_scheduler.domain.targets import DirectoryTarget, check_url
from task_scheduler.kinds.base import Occurrence, Problems, TaskKind

DIRECT_TARGET = "@file"
"""The target of a file task whose ends are URLs only: no directory, the allowlist only."""
CONTENT_LIMIT = 1024 * 1024
"""The most text a write task may carry in the rule itself."""


class Source(BaseModel):
    """Where a file is read from: a path in a directory target, or a URL."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(
        None, min_length=1, max_length=128, examples=["inbox"], description="A directory target (with path)."
    )
    path: str | None = Field(
        None,
        max_length=1024,
        examples=["reports/daily.csv", "a-{scheduled_at:%Y%m%dT%H%M}.csv"],
        description=(
            "Relative path inside the target: no leading /, no '..'. May hold the occurrence time"
            " (UTC) as {scheduled_at:STRFTIME}."
        ),
    )
    url: str | None = Field(
        None,
        max_length=2048,
        examples=["http://127.0.0.1:8080/report.csv"],
        description="http(s) URL instead of a target and path; the host must be in outbound_allowlist.",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, ("http", "https"), query=True)

    @model_validator(mode="after")
    def _one_place(self) -> Source:
        if self.url is not None and (self.target is not None or self.path is not None):
            raise ValueError("give url, or target and path, not both")
        if self.url is None and (self.target is None or self.path is None):
            raise ValueError("give target and path, or url")
        return self


class Destination(Source):
    """Where a file is written: a path in a writable directory target, or a URL."""

    method: Literal["PUT", "POST"] = Field("PUT", description="How content goes to a URL.")

    @model_validator(mode="after")
    def _method_for_url(self) -> Destination:
        if self.url is None and self.method != "PUT":
            raise ValueError("method goes with url")
        return self


class FileTask(BaseModel):
    """Read, write or copy a file."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["file"] = Field(description="Read, write or copy a file.")
    op: Literal["read", "write", "copy"] = Field(
        description="read: source only; write: content to destination; copy: source to destination."
    )
    source: Source | None = Field(None, description="What read and copy read.")
    destination: Destination | None = Field(None, description="Where write and copy write (atomically).")
    content: str | None = Field(
        None, max_length=CONTENT_LIMIT, description="The text write writes (UTF-8); write only."
    )
    keep: Literal["digest", "content"] = Field(
        "digest",
        description="What the run keeps: size and SHA-256 (digest), or also a bounded excerpt (content).",
    )
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Seconds a URL end may take.")
    target: str | None = Field(
        None,
        description=(
            "Set by the service: the directory target written to, else read from. Leave it out"
            " (or give that same name)."
        ),
    )

    @model_validator(mode="after")
    def _shape(self) -> FileTask:
        wants = {"read": (True, False, False), "write": (False, True, True), "copy": (True, True, False)}
        for field, needed in zip(("source", "destination", "content"), wants[self.op], strict=True):
            present = getattr(self, field) is not None
            if present != needed:
                verb = "needs" if needed else "takes no"
                raise ValueError(f"{self.op} {verb} {field}")
        derived = next((end.target for end in (self.destination, self.source) if end and end.target), None)
        if self.target is not None and self.target != derived:
            raise ValueError("target is set from source and destination: leave it out")
        self.target = derived
        return self


class FileKind(TaskKind):
    name = "file"
    spec = FileTask
    target_kinds = frozenset({"directory"})
    direct_target = DIRECT_TARGET
    direct_target_kind = "directory"

    def other_targets(self, task: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        assert isinstance(task, FileTask)
        source = task.source
        if source is not None and source.target is not None and source.target != task.target:
            return [(("source", "target"), source.target)]
        return []

    def urls(self, task: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
        assert isinstance(task, FileTask)
        ends = (("source", task.source), ("destination", task.destination))
        return [((role, "url"), end.url) for role, end in ends if end is not None and end.url is not None]

    def check_target(self, task: BaseModel, target: BaseModel) -> Problems:
        """The directory written to must be writable, and big enough for the content."""
        assert isinstance(task, FileTask) and isinstance(target, DirectoryTarget)
        if task.destination is None or task.destination.target is None:
            return []
        problems: Problems = []
        if not target.writable:
            problems.append((("destination", "target"), f"{task.target!r} is not writable"))
        if task.content is not None and len(task.content.encode()) > target.max_file_bytes:
            problems.append(
                (("content",), f"longer than {task.target!r} allows (max_file_bytes {target.max_file_bytes})")
            )
        return problems

    def build(self, document: dict[str, Any], occurrence: Occurrence) -> dict[str, Any]:
        """The document with each path rendered for this occurrence."""
        message = {key: value for key, value in document.items() if key not in ("kind", "target")}
        for end in ("source", "destination"):
            if isinstance(message.get(end), dict) and "path" in message[end]:
                message[end] = {**message[end], "path": render(message[end]["path"], occurrence.scheduled_at)}
        return message

    def resend_safe(self, document: dict[str, Any]) -> bool:
        """Reading twice does no harm, nor does replacing a file (atomically) with what it
        would hold anyway, nor a PUT; a POST may add twice."""
        destination = document.get("destination") or {}
        return not (destination.get("url") and destination.get("method") == "POST")
