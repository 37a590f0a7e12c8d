"""What the dispatcher does with a due occurrence: pure decisions over times and policy.

Misfire (an occurrence found late, typically after downtime):
- later than ``policy.misfire_grace_s`` after its time: ``missed``, never run;
- due before this dispatcher started (it fell into the downtime) and within the grace:
  ``catch_up`` decides: ``all`` runs every such occurrence, ``latest`` only the newest of
  its rule (the older ones are skipped as superseded), ``none`` runs none of them;
- due while the dispatcher was running: runs (lateness from load is not a misfire).

Retries: an attempt that failed in a way worth retrying is tried again after an
exponential backoff with jitter (``retry_backoff_s`` doubling up to
``retry_backoff_max_s``, each delay drawn from its upper half), up to
``policy.max_attempts`` attempts and never past the occurrence's deadline (its time plus
the misfire grace): a retry that late would be a misfire.

A fleet that cannot be reached at all (no connection) is an outage, not a failure of the
task: such attempts are retried with the same backoff until the deadline whatever
``max_attempts`` says, the last one a second before the deadline (``LAST_CALL``: a claim
after it would be a misfire), so that an occurrence is delivered if the fleet comes back
within its grace, and missed if it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from random import Random

from task_scheduler.domain.rules import Policy

LAST_CALL = timedelta(seconds=1)
"""How long before its deadline an unreachable fleet is tried for the last time."""


class Verdict(str, Enum):
    run = "run"
    missed = "missed"
    skipped = "skipped"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str | None = None


def misfire_decision(
    policy: Policy,
    *,
    scheduled_at: datetime,
    now: datetime,
    dispatcher_started_at: datetime,
    newer_overdue_exists: bool,
) -> Decision:
    """Run, miss or skip an occurrence that is due now (see the module docstring)."""
    late_s = (now - scheduled_at).total_seconds()
    if late_s > policy.misfire_grace_s:
        return Decision(
            Verdict.missed, f"{late_s:.0f} s late, past the misfire grace of {policy.misfire_grace_s:g} s"
        )
    if scheduled_at >= dispatcher_started_at or policy.catch_up == "all":
        return Decision(Verdict.run)
    if policy.catch_up == "none":
        return Decision(Verdict.skipped, "due while the scheduler was down (catch_up=none)")
    if newer_overdue_exists:
        return Decision(Verdict.skipped, "superseded by a newer occurrence due while down (catch_up=latest)")
    return Decision(Verdict.run)


def deadline(policy: Policy, scheduled_at: datetime) -> datetime:
    """After this instant an attempt would be a misfire: no retry is planned past it."""
    return scheduled_at + timedelta(seconds=policy.misfire_grace_s)


def retry_at(
    policy: Policy, *, attempt: int, now: datetime, scheduled_at: datetime, rng: Random
) -> datetime | None:
    """When to try again after failed attempt number ``attempt`` (1-based), or None to give up."""
    if attempt >= policy.max_attempts:
        return None
    when = now + _backoff(policy, attempt, rng)
    return when if when <= deadline(policy, scheduled_at) else None


def retry_unreachable_at(
    policy: Policy, *, attempt: int, now: datetime, scheduled_at: datetime, rng: Random
) -> datetime | None:
    """When to try again after attempt ``attempt`` found the fleet unreachable, or None once
    the deadline has passed (see the module docstring)."""
    last = deadline(policy, scheduled_at) - LAST_CALL
    if now >= last:
        return None
    # At least a second apart even with retry_backoff_s 0: no busy loop against a dead fleet.
    return min(now + max(_backoff(policy, attempt, rng), LAST_CALL), last)


def _backoff(policy: Policy, attempt: int, rng: Random) -> timedelta:
    """The delay after failed attempt ``attempt``: drawn from the upper half of its ceiling."""
    # The exponent is capped: outage retries are not bounded by max_attempts.
    ceiling = min(policy.retry_backoff_s * 2 ** min(attempt - 1, 32), policy.retry_backoff_max_s)
    return timedelta(seconds=ceiling / 2 + rng.random() * ceiling / 2)
