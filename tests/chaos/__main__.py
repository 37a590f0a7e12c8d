"""The fault and scale-out report: ``python -m tests.chaos [--quick]`` from the repository root.

Runs every scenario of :mod:`tests.chaos.scenarios` at full size (about 10 minutes;
``--quick`` uses the test sizes) against the local PostgreSQL, whose scheduler tables it
drops first (``TEST_POSTGRES_URL``, default the tests' own database) and which one
scenario restarts. Prints, per scenario, occurrences due, delivered, duplicated, lost
and missed, and lateness at the fleet; then lateness and throughput with 1 and 3 replicas,
and the API under load.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.chaos import scenarios
from tests.chaos.scenarios import Tally

FULL = {
    "kill": {"replicas": 3, "rules": 40, "every_s": 3, "occurrences": 50},
    "outage": {"rules": 4, "run_s": 120, "down_at_s": 20, "down_for_s": 60, "grace_s": 30},
    "slow": {"rules": 10, "run_s": 30, "delay_s": 3, "connections": 4},
    "postgres": {"rules": 10, "run_s": 40},
    "sigterm": {"rules": 10, "run_s": 40, "restarts": 5},
    "burst": 2000,
    "spread": (1000, 10),
    "load": {"clients": 16, "duration_s": 20, "tasks_per_s": 100},
}
QUICK = {
    "kill": {"replicas": 3, "rules": 12, "every_s": 2, "occurrences": 10},
    "outage": {"rules": 4, "run_s": 20, "down_at_s": 4, "down_for_s": 8, "grace_s": 4},
    "slow": {"rules": 5, "run_s": 12, "delay_s": 3, "connections": 2},
    "postgres": {"rules": 4, "run_s": 15},
    "sigterm": {"rules": 4, "run_s": 12, "restarts": 2},
    "burst": 300,
    "spread": (200, 5),
    "load": {"clients": 8, "duration_s": 8, "tasks_per_s": 50},
}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def row(result: Tally) -> str:
    return (
        f"  {result.scenario:<44} {result.due:>6} {result.delivered:>9} {result.duplicated:>5}"
        f" {result.lost:>5} {result.missed:>6}"
        f" {ms(result.percentile(0.5)):>8} {ms(result.percentile(0.99)):>8}"
    )


HEADER = (
    f"  {'scenario':<44} {'due':>6} {'delivered':>9} {'dup':>5} {'lost':>5} {'missed':>6}"
    f" {'p50 ms':>8} {'p99 ms':>8}"
)


def run(name: str, job: Callable[[Path], object]) -> object:
    """Run one scenario in a scratch directory, printing its rows as soon as it is done."""
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="chaos-") as workroot:
        outcome = job(Path(workroot))
    for result in outcome if isinstance(outcome, tuple) else (outcome,):
        if isinstance(result, Tally):
            print(row(result), result.facts, flush=True)
    return outcome


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test sizes, for a fast check")
    sizes = QUICK if parser.parse_args(argv).quick else FULL
    began = time.time()
    faults: list[Tally] = []
    notes: list[str] = []

    killed = run("replicas killed", lambda w: scenarios.replicas_killed(w, **sizes["kill"]))
    faults.append(killed)
    notes.append(
        f"{killed.scenario}: {killed.facts['kills']} kills, {killed.facts['stuck']} left in dispatching"
    )
    outage = run("fleet outage", lambda w: scenarios.fleet_outage(w, **sizes["outage"]))
    faults.append(outage)
    facts = outage.facts
    notes.append(
        f"{outage.scenario}: down {facts['down_s']:.0f} s; {facts['attempts_while_down']} attempts for"
        f" {facts['occurrences_due_while_down']} occurrences due meanwhile; service CPU"
        f" {facts['cpu_while_down_s']:.2f} s ({100 * facts['cpu_while_down_s'] / facts['down_s']:.1f}%);"
        f" {len(outage.wrong)} occurrence(s) with the wrong fate"
    )
    slow, fast = run("slow fleet", lambda w: scenarios.slow_fleet(w, **sizes["slow"]))
    faults += [fast, slow]
    notes.append(
        f"slow fleet: at most {slow.facts['most_in_hand']} requests in its hands at once"
        f" (max_connections {slow.facts['connections']}); {slow.facts['backlog']} still waiting at the end"
    )
    graceful = run("SIGTERM and restart", lambda w: scenarios.graceful_restarts(w, **sizes["sigterm"]))
    faults.append(graceful)
    notes.append(
        f"{graceful.scenario}: {graceful.facts['restarts']} restarts,"
        f" {graceful.facts['stuck']} left in dispatching"
    )
    try:
        restarted = run("PostgreSQL restart", lambda w: scenarios.postgres_restarted(w, **sizes["postgres"]))
    except scenarios.CannotRestart as reason:
        notes.append(f"PostgreSQL restart: not run ({reason})")
    else:
        faults.append(restarted)
        facts = restarted.facts
        notes.append(
            f"{restarted.scenario}: restart {facts['restart_s']:.1f} s;"
            f" /readyz 503 x{facts['not_ready_answers']}; ready at the end: {facts['ready_at_the_end']};"
            f" kept running: {facts['kept_running']}"
        )

    scale: list[Tally] = []
    burst_n = sizes["burst"]
    spread_n, spread_s = sizes["spread"]
    for replicas in (1, 3):
        scale.append(
            run(
                f"burst, {replicas} replica(s)",
                lambda w, n=replicas: scenarios.replicas_sharing(
                    w, replicas=n, offsets=[0.0] * burst_n, label=f"{burst_n:,} due at once"
                ),
            )
        )
        offsets = [round(i * spread_s / spread_n, 3) for i in range(spread_n)]
        scale.append(
            run(
                f"spread, {replicas} replica(s)",
                lambda w, n=replicas, offsets=offsets: scenarios.replicas_sharing(
                    w, replicas=n, offsets=offsets, label=f"{spread_n:,} over {spread_s} s"
                ),
            )
        )
    loaded = [
        run(
            f"API under load{', split' if split else ''}",
            lambda w, s=split: scenarios.api_under_load(w, split=s, **sizes["load"]),
        )
        for split in (False, True)
    ]

    print()
    print(f"Fault and scale-out report: {platform.platform()}, Python {platform.python_version()}")
    print()
    print("Faults (lateness: fleet arrival minus due time, of those delivered)")
    print(HEADER)
    for result in faults:
        print(row(result))
    print()
    for note in notes:
        print(f"  {note}")
    print()
    print("Replicas sharing one PostgreSQL")
    print(HEADER + f" {'tasks/s':>8}")
    for result in scale:
        print(row(result) + f" {ms(result.rate):>8}")
    print()
    print(f"API under load: {sizes['load']['clients']} clients without pause, while dispatching")
    print(HEADER)
    for result, load in loaded:
        print(row(result))
        print(
            f"    API: {load['requests_per_s']:,.0f} requests/s, p50 {load['p50_ms']:.1f} ms,"
            f" p99 {load['p99_ms']:.1f} ms, {load['errors']} error answer(s);"
            f" runs made by {', '.join(result.facts['replicas_that_dispatched'])}"
        )
    print(f"\nTotal run time {time.time() - began:.0f} s.")


if __name__ == "__main__":
    main()
