"""The message a due task becomes validates against Open-RMF's schemas."""

from __future__ import annotations

from datetime import datetime, timezone

from task_scheduler.domain.messages import build_message
from task_scheduler.domain.rmf_schema import validate_message

NOW = datetime(2026, 1, 5, 12, 0, 1, tzinfo=timezone.utc)
AT = datetime(2026, 1, 5, 12, 5, tzinfo=timezone.utc)
TEMPLATE = {
    "category": "patrol",
    "description": {"places": ["a", "b"], "rounds": 2},
    "priority": {"type": "binary", "value": 1},
    "fleet_name": None,
    "labels": ["site=hq", "task_scheduler.task=forged"],
}


def test_dispatch_request_with_labels_and_times():
    message = build_message(
        task_id="7-20260105T120500Z",
        rule_id=7,
        template=TEMPLATE,
        robot=None,
        fleet=None,
        scheduled_at=AT,
        requester="task_scheduler",
        now=NOW,
    )
    assert validate_message("dispatch_task_request", message) == []
    request = message["request"]
    assert request["labels"] == ["site=hq", "task_scheduler.rule=7", "task_scheduler.task=7-20260105T120500Z"]
    assert request["unix_millis_earliest_start_time"] == 1767614700000
    assert request["unix_millis_request_time"] == 1767614401000
    assert "fleet_name" not in request and TEMPLATE["labels"][0] == "site=hq"


def test_robot_request():
    message = build_message(
        task_id="x",
        rule_id=None,
        template=TEMPLATE,
        robot="r1",
        fleet="f1",
        scheduled_at=AT,
        requester="me",
        now=NOW,
    )
    assert message["type"] == "robot_task_request" and (message["robot"], message["fleet"]) == ("r1", "f1")
    assert validate_message("robot_task_request", message) == []
    assert message["request"]["labels"] == ["site=hq", "task_scheduler.task=x"]


def test_a_requester_and_times_the_template_gives_are_sent_as_given():
    given = {"requester": "alice", "unix_millis_request_time": 5, "unix_millis_earliest_start_time": 0}
    message = build_message(
        task_id="7-20260105T120500Z",
        rule_id=7,
        template={**TEMPLATE, **given},
        robot=None,
        fleet=None,
        scheduled_at=AT,
        requester="task_scheduler",
        now=NOW,
    )
    assert validate_message("dispatch_task_request", message) == []
    assert {key: message["request"][key] for key in given} == given
    assert message["request"]["labels"][-1] == "task_scheduler.task=7-20260105T120500Z"
