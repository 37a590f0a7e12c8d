"""The circuit breaker for unreachable targets: one probe at a time, backing off."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from task_scheduler.domain.outages import NOT_A_PROBE, PROBE_MAX_S, Outages

T0 = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_reachable_target_admits_everything_and_none_of_it_is_a_probe():
    outages = Outages()
    assert all(outages.admit("fleet", at(0)) == NOT_A_PROBE for _ in range(100))


def test_a_down_target_admits_one_probe_at_a_time_with_doubling_delays():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    assert outages.admit("fleet", at(0.5)) is None
    probe = outages.admit("fleet", at(1))  # the probe
    assert probe is not None and probe != NOT_A_PROBE
    assert outages.admit("fleet", at(1)) is None  # only one at a time
    outages.unreachable("fleet", at(1.1), probe)
    probes = []
    now = 1.1
    while now < 60:
        now += 0.1
        if (probe := outages.admit("fleet", at(now))) is not None:
            probes.append(round(now, 1))
            outages.unreachable("fleet", at(now), probe)
    assert probes[:3] == [3.1, 7.1, 15.1]  # 2 s, 4 s, then 8 s apart
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert max(gaps) <= PROBE_MAX_S + 0.11 and len(probes) < 10


def test_other_attempts_failing_meanwhile_do_not_make_probes_more_frequent():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    outages.unreachable("fleet", at(0.9))  # a send already under way when the outage began
    assert outages.get("fleet").probe_at == at(1.9)


def test_an_attempt_already_under_way_failing_neither_ends_the_probe_nor_counts_as_one():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    probe = outages.admit("fleet", at(1))
    outages.unreachable("fleet", at(1.5))  # sent before the outage, failed just now
    assert outages.admit("fleet", at(10)) is None  # the probe is still out
    assert outages.get("fleet").failed_probes == 0
    outages.unreachable("fleet", at(11), probe)
    assert outages.get("fleet").failed_probes == 1


def test_getting_through_ends_the_outage_and_an_abandoned_probe_lets_another_go():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    first = outages.admit("fleet", at(2))
    assert first
    outages.abandoned("fleet", first)
    second = outages.admit("fleet", at(2))
    assert second
    outages.abandoned("fleet", first)  # late news of an earlier probe leaves this one out
    assert outages.admit("fleet", at(2)) is None
    assert outages.reached("fleet") and not outages.reached("fleet")
    assert outages.admit("fleet", at(2)) == outages.admit("fleet", at(2)) == NOT_A_PROBE
    assert outages.admit("other", at(0)) == NOT_A_PROBE  # targets are independent


def test_a_task_at_its_last_call_probes_unless_the_target_was_found_down_within_a_second():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    probe = outages.admit("fleet", at(1))
    outages.unreachable("fleet", at(1), probe)  # the next probe is due at 3 s
    assert outages.admit("fleet", at(1.5), last_call=True) is None  # known down half a second ago
    assert outages.admit("fleet", at(2), last_call=True)
    assert outages.admit("fleet", at(2.5), last_call=True) is None  # that one is still out


def test_a_task_held_back_looks_again_at_the_next_probe_and_not_at_once_while_one_is_out():
    outages = Outages()
    outages.unreachable("fleet", at(0))
    assert outages.look_again_at("fleet", at(0.2)) == at(1)  # the probe's time
    probe = outages.admit("fleet", at(1))
    assert probe is not None
    # The probe hangs (a fleet that drops packets): held tasks must not come straight back.
    assert outages.look_again_at("fleet", at(5)) == at(6)
    outages.unreachable("fleet", at(11), probe)
    assert outages.look_again_at("fleet", at(11)) == at(13)  # the next probe, 2 s on
