"""What every outbound transport promises the dispatcher, and how a fleet's answer is read.

``submit`` never raises for anything the fleet or the network does: it returns a
:class:`Delivery`, whose ``ambiguous`` flag tells the dispatcher to ask the fleet
(:meth:`Transport.find`, by the labels the request carries) before any retry, so that a
task is never handed over twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from task_scheduler.domain.storable import storable, storable_json

RESPONSE_LIMIT: Final = 16 * 1024
"""The largest answer (as JSON) a Delivery keeps whole."""
EXCERPT_LIMIT: Final = 2048
"""How much of a larger or unreadable answer a Delivery keeps, as text."""
ERROR_LIMIT: Final = 500

SUBMISSION_TYPES: Final = ("dispatch_task_request", "robot_task_request")


class Outcome(str, Enum):
    SUCCEEDED = "succeeded"
    """The fleet took the task; ``fleet_task_id`` names it."""
    FAILED = "failed"
    """The fleet did not take the task, or may have (see ``ambiguous``)."""
    REJECTED = "rejected"
    """The fleet refused this task: sending it again unchanged will not help."""
    TIMEOUT = "timeout"
    """Sent, but no answer in time."""
    UNKNOWN = "unknown"
    """Sent, but the answer was lost or could not be read."""


@dataclass(frozen=True)
class Delivery:
    """What became of one submission."""

    outcome: Outcome
    fleet_task_id: str | None = None
    response: Any = None
    """The fleet's answer, bounded: see :func:`bounded`."""
    error: str | None = None
    """A short human-readable reason, when the outcome is not ``succeeded``."""
    ambiguous: bool = False
    """The fleet may have the task although we got no clear yes."""
    reached: bool = True
    """False when no connection could be made, so nothing was sent: the fleet is down or
    unreachable, which says nothing about the task itself."""


class LookupFailed(Exception):
    """The fleet could not be asked, or its answer not understood: nothing is known.

    ``reached`` is False when no connection could be made (see :attr:`Delivery.reached`).
    """

    def __init__(self, message: str, *, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class Transport(Protocol):
    """Hands the messages its task kinds build to one target (a fleet manager, a web service, ...)."""

    supports_lookup: bool
    capacity: int
    """How many submissions it sends at once; more wait their turn inside it."""

    async def submit(self, message: dict[str, Any]) -> Delivery:
        """Send one message, e.g. a complete ``dispatch_task_request``."""
        ...

    async def find(self, label: str) -> str | None:
        """The fleet task id of a task carrying ``label`` (``key=value``), None if there is none.

        Raises :class:`LookupFailed` when the fleet cannot tell.
        """
        ...

    async def aclose(self) -> None: ...


def logged(log: logging.Logger, where: str, delivery: Delivery) -> Delivery:
    """Log what became of a submission to ``where`` (debug when it succeeded); return it."""
    if delivery.outcome is Outcome.SUCCEEDED:
        log.debug("fleet task %s created at %s", delivery.fleet_task_id, where)
    else:
        ambiguous = " (ambiguous)" if delivery.ambiguous else ""
        log.info("submission to %s: %s%s: %s", where, delivery.outcome.value, ambiguous, delivery.error)
    return delivery


def describe(error: BaseException) -> str:
    """An exception as a short reason; a client's own text is often empty."""
    return shorten(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def shorten(text: str, limit: int = ERROR_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying so when it was."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(answer: Any) -> Any:
    """The answer as a Delivery keeps it, so a huge reply cannot bloat the run history.

    It is first made storable (``domain.storable``: no NUL, no lone surrogate, no NaN,
    nothing deeper than its limit). A dict (or list) whose JSON fits in
    :data:`RESPONSE_LIMIT` is then kept as is; anything else becomes a text excerpt of at
    most :data:`EXCERPT_LIMIT` characters.
    """
    if answer is None:
        return None
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    if isinstance(answer, (dict, list)):  # nearly every answer: kept after one encoding
        text = storable_json(answer)
        if text is not None and len(text.encode()) <= RESPONSE_LIMIT:
            return answer
    answer = storable(answer)[0]
    if isinstance(answer, str):
        text = answer
    else:
        try:
            text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            text = repr(answer)
        else:
            if isinstance(answer, (dict, list)) and len(text.encode()) <= RESPONSE_LIMIT:
                return answer
    if len(text) <= EXCERPT_LIMIT:
        return text
    return f"{text[:EXCERPT_LIMIT]}… ({len(text.encode())} bytes in all)"


def error_text(errors: Any) -> str:
    """One line from an RMF ``errors`` list: each error's detail, else its category or code."""
    parts: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            text = error.get("detail") or error.get("category") or f"code {error.get('code')}"
            parts.append(str(text))
    return shorten("; ".join(parts) or "no reason given")


def _internal(errors: Any) -> bool:
    """Whether an error list reports a server fault (code >= 500), not a refusal of the task."""
    return isinstance(errors, list) and any(
        isinstance(error, dict) and isinstance(error.get("code"), int) and error["code"] >= 500
        for error in errors
    )


def read_answer(answer: Any) -> Delivery:
    """Read a ``dispatch_task_response`` or ``robot_task_response`` (HTTP 200, or a bridge reply).

    ``success`` with ``state.booking.id``: succeeded. ``success`` false: rejected, unless an
    error has code >= 500 (how the bridge reports what HTTP says with a 500): failed, and
    ambiguous since the fleet may have kept the task. Anything else: unknown, ambiguous.
    """
    kept = bounded(answer)
    if not isinstance(answer, dict):
        return Delivery(
            Outcome.UNKNOWN, response=kept, error="the fleet's answer is not a JSON object", ambiguous=True
        )
    success = answer.get("success")
    if success is True:
        state = answer.get("state")
        booking = state.get("booking") if isinstance(state, dict) else None
        task_id = booking.get("id") if isinstance(booking, dict) else None
        if isinstance(task_id, str) and task_id:
            return Delivery(Outcome.SUCCEEDED, fleet_task_id=task_id, response=kept)
        return Delivery(
            Outcome.UNKNOWN,
            response=kept,
            error="the fleet said success without state.booking.id",
            ambiguous=True,
        )
    if success is False:
        errors = answer.get("errors")
        if _internal(errors):
            return Delivery(Outcome.FAILED, response=kept, error=error_text(errors), ambiguous=True)
        return Delivery(Outcome.REJECTED, response=kept, error=error_text(errors))
    return Delivery(
        Outcome.UNKNOWN, response=kept, error="the fleet's answer has no success flag", ambiguous=True
    )
