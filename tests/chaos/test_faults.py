"""The fault scenarios, small and bounded: what production does to the service, survived.

Each runs real processes over loopback for well under a minute; ``python -m tests.chaos``
runs the same scenarios at full size and prints the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import scenarios
from tests.databases import REQUIRE_DBS

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def test_killing_replicas_at_random_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    result = scenarios.replicas_killed(tmp_path, replicas=3, rules=12, every_s=2, occurrences=10)

    assert result.facts["kills"] >= 3
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.delivered == result.due
    assert result.facts["stuck"] == 0


def test_a_fleet_outage_delivers_what_is_within_the_grace_and_misses_the_rest(tmp_path: Path) -> None:
    result = scenarios.fleet_outage(tmp_path, rules=4, run_s=20, down_at_s=4, down_for_s=8, grace_s=4)

    assert result.wrong == [], result.wrong
    assert result.duplicated == 0 and result.lost == 0, result
    assert result.missed > 0 and result.delivered > result.missed
    # One probe at a time, not an attempt per occurrence: at most about one a second.
    assert result.facts["attempts_while_down"] <= result.facts["down_s"] + 2
    assert result.facts["attempts_while_down"] < result.facts["occurrences_due_while_down"] / 2
    assert result.facts["cpu_while_down_s"] < 0.2 * result.facts["down_s"]


def test_a_slow_fleet_holds_up_only_its_own_rules_and_gets_at_most_its_connections(tmp_path: Path) -> None:
    slow, fast = scenarios.slow_fleet(tmp_path, rules=5, run_s=12, delay_s=3, connections=2)

    assert fast.delivered == fast.due and fast.duplicated == 0
    assert fast.percentile(0.99) < 250, fast.lateness_ms
    assert slow.facts["most_in_hand"] <= slow.facts["connections"]
    assert slow.duplicated == 0 and slow.facts["backlog"] > 0  # it really was behind


def test_sigterm_mid_dispatch_leaves_nothing_stuck_and_sends_nothing_twice(tmp_path: Path) -> None:
    result = scenarios.graceful_restarts(tmp_path, rules=4, run_s=12, restarts=2)

    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.facts["stuck"] == 0


def test_a_postgresql_restart_is_reported_not_ready_and_loses_nothing(tmp_path: Path) -> None:
    try:
        result = scenarios.postgres_restarted(tmp_path, rules=4, run_s=15)
    except scenarios.CannotRestart as reason:
        if REQUIRE_DBS:
            pytest.fail(f"{reason}; RMF_TASK_SCHEDULER_REQUIRE_DBS=1 makes this a failure")
        pytest.skip(str(reason))

    assert result.facts["kept_running"] and result.facts["ready_at_the_end"]
    assert result.facts["not_ready_answers"] > 0 and result.facts["other_answers"] == []
    assert (result.lost, result.duplicated) == (0, 0), result
