"""Events packed into NOTIFY payloads: in order, under PostgreSQL's limit, large ones trimmed."""

from __future__ import annotations

import json
import logging

import pytest

from task_scheduler.events import Event
from task_scheduler.storage.change_feed import PAYLOAD_MAX, ChangeFeed, pack


def event(n: int, size: int = 10) -> str:
    return json.dumps({"type": "run.finished", "rule_id": n, "data": {"pad": "x" * size}})


def test_small_events_share_payloads_in_order_each_under_the_limit():
    events = [event(n, 300) for n in range(100)]
    payloads = pack("r1", events)
    assert 1 < len(payloads) < 10
    assert all(len(p) < PAYLOAD_MAX for p in payloads)
    bodies = [json.loads(p) for p in payloads]
    assert {b["replica"] for b in bodies} == {"r1"}
    assert [e["rule_id"] for b in bodies for e in b["events"]] == list(range(100))


def test_an_event_too_large_alone_goes_without_its_data():
    payloads = pack("r1", [event(1), event(2, PAYLOAD_MAX), event(3)])
    events = [e for p in payloads for e in json.loads(p)["events"]]
    assert [e["rule_id"] for e in events] == [1, 2, 3]
    assert events[1]["data"] == {"truncated": True} and events[0]["data"] == {"pad": "x" * 10}
    assert all(len(p) < PAYLOAD_MAX for p in payloads)


def test_nothing_to_send_makes_no_payload():
    assert pack("r1", []) == []


def test_a_replicas_own_payloads_heard_back_are_dropped_unparsed(caplog: pytest.LogCaptureFixture):
    heard: list[Event] = []
    feed = ChangeFeed("postgres://x@127.0.0.1/db", "r1", on_change=lambda: None, on_event=heard.append)
    own = pack("r1", [event(1)])[0]
    with caplog.at_level(logging.WARNING):
        feed._heard_events(None, 0, "", own)
        feed._heard_events(None, 0, "", own[:-5])  # cut short: not even parsed
    assert heard == [] and caplog.records == []
    other = json.dumps({"replica": "r2", "events": [{"type": "run.finished", "at": "2026-01-05T12:00:00Z"}]})
    feed._heard_events(None, 0, "", other)
    assert [(e.type.value, e.replica) for e in heard] == [("run.finished", "r2")]
