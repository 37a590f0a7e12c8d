"""Misfire and retry decisions, with fixed times."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from random import Random

import pytest

from task_scheduler.domain.policy import LAST_CALL, Verdict, misfire_decision, retry_at, retry_unreachable_at
from task_scheduler.domain.rules import Policy

T = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
STARTED = T + timedelta(minutes=10)


def decide(policy: Policy, *, late_s: float, due_before_start: bool, newer: bool = False):
    scheduled = (STARTED - timedelta(seconds=1)) if due_before_start else (STARTED + timedelta(seconds=1))
    return misfire_decision(
        policy,
        scheduled_at=scheduled,
        now=scheduled + timedelta(seconds=late_s),
        dispatcher_started_at=STARTED,
        newer_overdue_exists=newer,
    )


def test_past_the_grace_is_missed_whatever_the_catch_up():
    for catch_up in ("all", "latest", "none"):
        decision = decide(Policy(misfire_grace_s=60, catch_up=catch_up), late_s=61, due_before_start=True)
        assert decision.verdict is Verdict.missed and "misfire grace of 60 s" in decision.reason


def test_due_while_running_runs_even_when_late_within_the_grace():
    for catch_up in ("all", "latest", "none"):
        assert decide(Policy(catch_up=catch_up), late_s=59, due_before_start=False).verdict is Verdict.run


@pytest.mark.parametrize(
    ("catch_up", "newer", "verdict"),
    [
        ("all", True, Verdict.run),
        ("latest", False, Verdict.run),
        ("latest", True, Verdict.skipped),
        ("none", False, Verdict.skipped),
    ],
)
def test_catch_up_after_downtime(catch_up, newer, verdict):
    decision = decide(Policy(catch_up=catch_up), late_s=5, due_before_start=True, newer=newer)
    assert decision.verdict is verdict
    if verdict is Verdict.skipped:
        assert f"catch_up={catch_up}" in decision.reason


def test_backoff_doubles_with_jitter_up_to_the_ceiling():
    policy = Policy(retry_backoff_s=4, retry_backoff_max_s=10, max_attempts=10, misfire_grace_s=3600)
    rng = Random(7)
    delays = []
    for attempt in range(1, 6):
        when = retry_at(policy, attempt=attempt, now=T, scheduled_at=T, rng=rng)
        delays.append((when - T).total_seconds())
    ceilings = [4, 8, 10, 10, 10]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not lock-step


def test_no_retry_after_the_last_attempt_or_past_the_deadline():
    policy = Policy(retry_backoff_s=30, max_attempts=3, misfire_grace_s=60)
    assert retry_at(policy, attempt=3, now=T, scheduled_at=T, rng=Random(1)) is None
    assert retry_at(policy, attempt=1, now=T + timedelta(seconds=50), scheduled_at=T, rng=Random(1)) is None
    assert retry_at(policy, attempt=1, now=T, scheduled_at=T, rng=Random(1)) is not None


def test_an_unreachable_fleet_is_retried_past_max_attempts_until_just_before_the_deadline():
    policy = Policy(retry_backoff_s=4, retry_backoff_max_s=20, max_attempts=2, misfire_grace_s=60)
    deadline = T + timedelta(seconds=60)
    now, attempt, tries = T, 1, []
    while (
        when := retry_unreachable_at(policy, attempt=attempt, now=now, scheduled_at=T, rng=Random(attempt))
    ) is not None:
        tries.append(when)
        now, attempt = when, attempt + 1
    assert len(tries) > policy.max_attempts
    assert tries[-1] == deadline - LAST_CALL  # one last try while the occurrence is still on time
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise([T, *tries])]
    assert all(gap <= 20 for gap in gaps) and gaps[0] >= 2  # backoff, not a busy loop
    assert retry_unreachable_at(policy, attempt=1, now=deadline, scheduled_at=T, rng=Random(1)) is None


def test_outage_retries_stay_a_second_apart_and_never_overflow():
    policy = Policy(retry_backoff_s=0, max_attempts=1, misfire_grace_s=7 * 86400)
    when = retry_unreachable_at(policy, attempt=1, now=T, scheduled_at=T, rng=Random(1))
    assert when is not None and when - T >= LAST_CALL  # not a busy loop with a zero backoff
    late = Policy(retry_backoff_s=5, retry_backoff_max_s=300, misfire_grace_s=7 * 86400)
    when = retry_unreachable_at(late, attempt=5000, now=T, scheduled_at=T, rng=Random(1))
    assert when is not None and timedelta(seconds=150) <= when - T <= timedelta(seconds=300)
