"""Prometheus metrics, one registry per app.

Several apps can live in one process (tests, benchmarks), so nothing is registered in
prometheus_client's global default registry: each :class:`Metrics` owns its registry,
and ``/metrics`` renders that one.
"""

from __future__ import annotations

import logging
import math
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["LATENESS_BUCKETS", "OUTCOMES", "Metrics"]

logger = logging.getLogger(__name__)

OUTCOMES: Final = ("succeeded", "failed", "rejected", "timeout", "unknown")
"""The run outcomes counted; anything else counts as ``unknown`` (labels stay few)."""

LATENESS_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""1 ms to 5 min: sub-second is healthy, minutes mean a backlog or a fleet outage."""


class Metrics:
    """The scheduler's metrics on a private registry (with the process collectors)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.dispatch_lateness = Histogram(
            "task_scheduler_dispatch_lateness_seconds",
            "Fleet-accept time minus occurrence time, per dispatched task (early sends count as 0).",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.runs = Counter(
            "task_scheduler_runs_total",
            "Runs finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:  # export zeros, so rate() and alerts work before the first failure
            self.runs.labels(outcome=outcome)
        self.queue_depth = Gauge(
            "task_scheduler_queue_depth",
            "Tasks due and not yet dispatched.",
            registry=self.registry,
        )
        self.target_queue_depth = Gauge(
            "task_scheduler_target_queue_depth",
            "Tasks due and not yet dispatched, by target.",
            ["target"],
            registry=self.registry,
        )
        self.target_runs = Counter(
            "task_scheduler_target_runs_total",
            "Runs finished, by target and outcome.",
            ["target", "outcome"],
            registry=self.registry,
        )
        self._queued_targets: set[str] = set()
        self.claims = Counter(
            "task_scheduler_claims_total",
            "Due tasks this replica claimed to dispatch.",
            registry=self.registry,
        )
        self.expander_lag = Gauge(
            "task_scheduler_expander_lag_seconds",
            "How far the oldest enabled rule's stored horizon is behind now (0 when none is).",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "task_scheduler_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "task_scheduler_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.cpu_spent = Counter(
            "task_scheduler_http_cpu_spent_total",
            "HTTP requests stopped for using more than request_cpu_s of CPU, by method and route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.refresh_errors = Counter(
            "task_scheduler_metrics_refresh_errors_total",
            "Scrapes whose gauge refresh failed (queue depth and expander lag were left stale).",
            registry=self.registry,
        )

    def observe_run(self, outcome: str, lateness_s: float | None, target: str | None = None) -> None:
        """Count a finished run; ``lateness_s`` (None when the fleet never accepted) feeds the histogram.

        A negative lateness (sent ahead with a lead time and accepted before the
        occurrence) is recorded as 0, on time: a histogram's sum must never go down.
        """
        if outcome not in OUTCOMES:
            logger.warning("run outcome %r is not one of %s; counted as unknown", outcome, OUTCOMES)
            outcome = "unknown"
        self.runs.labels(outcome=outcome).inc()
        if target is not None:
            self.target_runs.labels(target=target, outcome=outcome).inc()
        if lateness_s is not None and math.isfinite(lateness_s):
            self.dispatch_lateness.observe(max(0.0, lateness_s))

    def set_queue_depths(self, by_target: dict[str, int]) -> None:
        """Due tasks per target; a target no longer listed goes back to 0, not stale."""
        for target in self._queued_targets - by_target.keys():
            self.target_queue_depth.labels(target=target).set(0)
        self._queued_targets |= by_target.keys()
        for target, count in by_target.items():
            self.target_queue_depth.labels(target=target).set(count)
        self.queue_depth.set(sum(by_target.values()))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.http_latency.labels(method=method, route=route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The registry in Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
