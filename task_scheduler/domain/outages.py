"""Targets found unreachable, and when to try them again: a circuit breaker, as pure logic.

While a target is down, one attempt at a time probes it, after a delay that doubles with
each failed probe up to :data:`PROBE_MAX_S`; every other task for it is held back (given
back unsent, due at the next probe) instead of opening a connection of its own. A task
at its last call (a second before its misfire deadline) may also probe, unless the
target was found down within the last :data:`FRESH_S`: whether it is back is then
known to within a second when its fate is decided. A minute's outage costs at most a
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


@dataclass
class Outage:
    since: datetime
    probe_at: datetime
    checked_at: datetime
    """When an attempt last found it down."""
    failed_probes: int = 0
    probing: bool = False


class Outages:
    def __init__(self) -> None:
        self._down: dict[str, Outage] = {}

    def admit(self, target: str, now: datetime, *, last_call: bool = False) -> bool:
        """Whether an attempt may go to ``target`` now: always, unless it is down; then only
        as the one probe, once the probe is due or (``last_call``) the news is stale."""
        outage = self._down.get(target)
        if outage is None:
            return True
        stale = now - outage.checked_at >= timedelta(seconds=FRESH_S)
        if outage.probing or not (now >= outage.probe_at or (last_call and stale)):
            return False
        outage.probing = True
        return True

    def unreachable(self, target: str, now: datetime) -> None:
        """An attempt could not connect: the target is down (still, or from now)."""
        outage = self._down.get(target)
        if outage is None:
            self._down[target] = Outage(
                since=now, probe_at=now + timedelta(seconds=PROBE_MIN_S), checked_at=now
            )
            return
        outage.checked_at = max(outage.checked_at, now)
        if outage.probing:
            outage.failed_probes += 1
            outage.probing = False
        delay = min(PROBE_MIN_S * 2**outage.failed_probes, PROBE_MAX_S)
        outage.probe_at = max(outage.probe_at, now + timedelta(seconds=delay))

    def reached(self, target: str) -> bool:
        """An attempt got through: the outage, if there was one, is over (returns whether)."""
        return self._down.pop(target, None) is not None

    def abandoned(self, target: str) -> None:
        """The probe ended without saying anything about the target: another may probe."""
        outage = self._down.get(target)
        if outage is not None:
            outage.probing = False

    def get(self, target: str) -> Outage | None:
        return self._down.get(target)
