"""Targets found unreachable, and when to try them again: a circuit breaker, as pure logic.

While a target is down, one attempt at a time probes it, after a delay that doubles with
each failed probe up to :data:`PROBE_MAX_S`; every other task for it is held back (given
back unsent, due at the next probe) instead of opening a connection of its own. A task
at its last call (a second before its misfire deadline) may also probe, unless a probe
is out or the target was found down within the last :data:`FRESH_S` (then it is
missed): whether the target is back is known to within a second when its fate is
decided. Only the probe's own failure backs the probes off; an attempt that was already
under way when the target went down says only that it is down. A minute's outage costs at most a
probe a second, not an attempt per task per retry. The first attempt that gets through
ends the outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PROBE_MIN_S = 1.0
FRESH_S = 1.0
PROBE_MAX_S = 8.0
"""The longest wait between probes, which is also the longest a recovered target waits
before its held tasks go again."""


NOT_A_PROBE = 0


@dataclass
class Outage:
    since: datetime
    probe_at: datetime
    checked_at: datetime
    """When an attempt last found it down."""
    failed_probes: int = 0
    probe: int | None = None
    """The number of the probe out now, if one is."""


class Outages:
    def __init__(self) -> None:
        self._down: dict[str, Outage] = {}
        self._probes = 0

    def admit(self, target: str, now: datetime, *, last_call: bool = False) -> int | None:
        """Whether an attempt may go to ``target`` now: None to hold it back. It may go
        always (as 0) unless the target is down; then only as the one probe (its number, to
        report with), once the probe is due or (``last_call``) the news is stale."""
        outage = self._down.get(target)
        if outage is None:
            return NOT_A_PROBE
        stale = now - outage.checked_at >= timedelta(seconds=FRESH_S)
        if outage.probe is not None or not (now >= outage.probe_at or (last_call and stale)):
            return None
        self._probes += 1
        outage.probe = self._probes
        return outage.probe

    def unreachable(self, target: str, now: datetime, probe: int = NOT_A_PROBE) -> None:
        """An attempt (the probe numbered ``probe``, or one that was not a probe, such as one
        already under way when the target went down) could not connect: the target is down."""
        outage = self._down.get(target)
        if outage is None:
            self._down[target] = Outage(
                since=now, probe_at=now + timedelta(seconds=PROBE_MIN_S), checked_at=now
            )
            return
        outage.checked_at = max(outage.checked_at, now)
        if probe != NOT_A_PROBE and outage.probe == probe:
            outage.failed_probes += 1
            outage.probe = None
        delay = min(PROBE_MIN_S * 2**outage.failed_probes, PROBE_MAX_S)
        outage.probe_at = max(outage.probe_at, now + timedelta(seconds=delay))

    def reached(self, target: str) -> bool:
        """An attempt got through: the outage, if there was one, is over (returns whether)."""
        return self._down.pop(target, None) is not None

    def abandoned(self, target: str, probe: int) -> None:
        """The probe ``probe`` ended without saying anything about the target: another may
        probe (unless this one was answered already and another is out)."""
        outage = self._down.get(target)
        if outage is not None and outage.probe == probe:
            outage.probe = None

    def get(self, target: str) -> Outage | None:
        return self._down.get(target)

    def look_again_at(self, target: str, now: datetime) -> datetime:
        """When a task held back for a down target is due again: at the next probe. While a
        probe is out, whose time has come, not before :data:`PROBE_MIN_S` from now: its
        outcome decides, and one that gets through brings the held tasks back at once.
        (Due at once, they would be claimed and held back again and again until it ends.)"""
        outage = self._down[target]
        if outage.probe is None:
            return outage.probe_at
        return max(outage.probe_at, now + timedelta(seconds=PROBE_MIN_S))
