"""Prometheus metrics: names, values, per-app registries, and the /metrics route."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from task_scheduler.api import metrics as metrics_api
from task_scheduler.metrics import OUTCOMES, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, keyed by name and sorted labels."""
    body, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def bucket(le: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("task_scheduler_dispatch_lateness_seconds_bucket", (("le", le),))


def test_render_names_every_metric_with_zeros_to_start() -> None:
    body, content_type = Metrics().render()
    text = body.decode()

    assert content_type.startswith("text/plain")
    for name in (
        "task_scheduler_dispatch_lateness_seconds",
        "task_scheduler_runs_total",
        "task_scheduler_queue_depth",
        "task_scheduler_expander_lag_seconds",
        "task_scheduler_metrics_refresh_errors_total",
    ):
        assert f"# TYPE {name} " in text
    values = samples(Metrics())
    for outcome in OUTCOMES:
        assert values[("task_scheduler_runs_total", (("outcome", outcome),))] == 0
    assert values[("task_scheduler_queue_depth", ())] == 0
    assert bucket("0.001") in values and bucket("300.0") in values and bucket("+Inf") in values


def test_observed_runs_and_lateness_show_in_the_rendering(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()

    metrics.observe_run("succeeded", 0.003)
    metrics.observe_run("succeeded", 42.0)
    metrics.observe_run("failed", None)  # never accepted: counted, not timed
    metrics.observe_run("succeeded", -2.0)  # sent ahead with a lead time: on time
    with caplog.at_level(logging.WARNING, logger="task_scheduler.metrics"):
        metrics.observe_run("exploded", None)
    metrics.queue_depth.set(5)
    metrics.expander_lag.set(12.5)

    values = samples(metrics)
    runs = {outcome: values[("task_scheduler_runs_total", (("outcome", outcome),))] for outcome in OUTCOMES}
    assert runs == {"succeeded": 3, "failed": 1, "rejected": 0, "timeout": 0, "unknown": 1}
    assert "'exploded'" in caplog.text
    assert values[("task_scheduler_dispatch_lateness_seconds_count", ())] == 3
    assert values[("task_scheduler_dispatch_lateness_seconds_sum", ())] == pytest.approx(42.003)
    assert values[bucket("0.001")] == 1  # the early one, as 0
    assert values[bucket("0.005")] == 2
    assert values[bucket("30.0")] == 2 and values[bucket("60.0")] == 3
    assert values[("task_scheduler_queue_depth", ())] == 5
    assert values[("task_scheduler_expander_lag_seconds", ())] == 12.5
    assert "python_info" in {name for name, _ in values}  # the process collectors are on this registry


def test_two_instances_are_independent_and_stay_out_of_the_global_registry() -> None:
    one, two = Metrics(), Metrics()  # a second set of the same names does not clash

    one.observe_run("timeout", 1.0)
    one.queue_depth.set(9)

    assert samples(one)[("task_scheduler_runs_total", (("outcome", "timeout"),))] == 1
    assert samples(two)[("task_scheduler_runs_total", (("outcome", "timeout"),))] == 0
    assert samples(two)[("task_scheduler_queue_depth", ())] == 0
    assert REGISTRY.get_sample_value("task_scheduler_runs_total", {"outcome": "timeout"}) is None


# --- GET /metrics ---------------------------------------------------------------------


async def scrape(services: object) -> httpx.Response:
    app = FastAPI()
    app.include_router(metrics_api.router)
    app.state.services = services
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
        return await client.get("/metrics")


def test_metrics_route_is_not_in_the_openapi_schema() -> None:
    app = FastAPI()
    app.include_router(metrics_api.router)
    assert "/metrics" not in app.openapi()["paths"]


async def test_the_route_serves_the_apps_own_registry_without_a_refresh_hook() -> None:
    metrics = Metrics()
    metrics.observe_run("rejected", None)

    response = await scrape(types.SimpleNamespace(metrics=metrics))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'task_scheduler_runs_total{outcome="rejected"} 1.0' in response.text


@pytest.mark.parametrize("asynchronous", [True, False])
async def test_the_route_refreshes_the_gauges_first(asynchronous: bool) -> None:
    metrics = Metrics()

    def set_gauges() -> None:
        metrics.queue_depth.set(3)
        metrics.expander_lag.set(60)

    async def set_gauges_async() -> None:
        set_gauges()

    refresh: Callable[[], object] = set_gauges_async if asynchronous else set_gauges
    response = await scrape(types.SimpleNamespace(metrics=metrics, refresh_gauges=refresh))

    assert "task_scheduler_queue_depth 3.0" in response.text
    assert "task_scheduler_expander_lag_seconds 60.0" in response.text


async def test_a_failing_refresh_still_serves_the_metrics_and_counts_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    metrics.queue_depth.set(7)

    async def database_down() -> None:
        raise ConnectionError("database unreachable")

    with caplog.at_level(logging.ERROR, logger="task_scheduler.api.metrics"):
        response = await scrape(types.SimpleNamespace(metrics=metrics, refresh_gauges=database_down))

    assert response.status_code == 200
    assert "task_scheduler_queue_depth 7.0" in response.text  # stale, but there
    assert "task_scheduler_metrics_refresh_errors_total 1.0" in response.text
    assert "database unreachable" in caplog.text


def test_queue_depth_per_target_goes_back_to_zero_when_a_target_has_nothing_due() -> None:
    metrics = Metrics()
    metrics.set_queue_depths({"default": 3, "site-b": 2})
    metrics.set_queue_depths({"default": 1})
    value = metrics.registry.get_sample_value
    assert value("task_scheduler_target_queue_depth", {"target": "default"}) == 1
    assert value("task_scheduler_target_queue_depth", {"target": "site-b"}) == 0
    assert value("task_scheduler_queue_depth") == 1


def test_runs_are_counted_per_target_too() -> None:
    metrics = Metrics()
    metrics.observe_run("failed", None, "site-b")
    metrics.observe_run("failed", None)
    value = metrics.registry.get_sample_value
    assert value("task_scheduler_target_runs_total", {"target": "site-b", "outcome": "failed"}) == 1
    assert value("task_scheduler_runs_total", {"outcome": "failed"}) == 2
