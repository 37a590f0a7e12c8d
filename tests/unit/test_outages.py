"""The circuit breaker for unreachable targets: one probe at a time, backing off."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from task_scheduler.domain.outages import PROBE_MAX_S, Outages

T0 = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_reachable_target_admits_everything():
    outages = Outages()
    assert all(outages.admit("fleet", at(0)) for _ in range(100))


def test_a_down_target_admits_one_probe_at_a_time_with_doubling_delays():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    assert not outages.admit("fleet", at(0.5))
    assert outages.admit("fleet", at(1))  # the probe
    assert not outages.admit("fleet", at(1))  # only one at a time
    outages.unreachable("fleet", at(1.1))
    probes = []
    now = 1.1
    while now < 60:
        now += 0.1
        if outages.admit("fleet", at(now)):
            probes.append(round(now, 1))
            outages.unreachable("fleet", at(now))
    assert probes[:3] == [3.1, 7.1, 15.1]  # 2 s, 4 s, then 8 s apart
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert max(gaps) <= PROBE_MAX_S + 0.11 and len(probes) < 10


def test_other_attempts_failing_meanwhile_do_not_make_probes_more_frequent():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    outages.unreachable("fleet", at(0.9))  # a send already under way when the outage began
    assert outages.get("fleet").probe_at == at(1.9)


def test_getting_through_ends_the_outage_and_an_abandoned_probe_lets_another_go():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    assert outages.admit("fleet", at(2))
    outages.abandoned("fleet")
    assert outages.admit("fleet", at(2))
    assert outages.reached("fleet") and not outages.reached("fleet")
    assert outages.admit("fleet", at(2)) and outages.admit("fleet", at(2))
    assert outages.admit("other", at(0))  # targets are independent


def test_a_task_at_its_last_call_probes_unless_the_target_was_found_down_within_a_second():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    assert outages.admit("fleet", at(1))
    outages.unreachable("fleet", at(1))  # the next probe is due at 3 s
    assert not outages.admit("fleet", at(1.5), last_call=True)  # known down half a second ago
    assert outages.admit("fleet", at(2), last_call=True)
    assert not outages.admit("fleet", at(2.5), last_call=True)  # that one is still out
