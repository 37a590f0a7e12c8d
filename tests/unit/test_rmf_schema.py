"""Task requests are held to Open-RMF's own schemas, with each problem's exact place.

The examples follow the packaged schemas (``task_scheduler/rmf_schemas``); a request
that passes here is one the fleet adapter's schema check would accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from task_scheduler.domain import rmf_schema
from task_scheduler.domain.rmf_schema import (
    BUILTIN_CATEGORIES,
    Problem,
    RmfValidationError,
    check_extra_categories,
    schema_names,
    validate_message,
    validate_task_request,
)

PLACE_ID = "https://raw.githubusercontent.com/open-rmf/rmf_ros2/main/rmf_fleet_adapter/schemas/place.json"

CLEAN = {"zone": "lobby"}
PATROL = {
    "places": ["lobby", 3, {"waypoint": "dock", "orientation": 1.57}],
    "rounds": 2,
}
DELIVERY = {
    "pickup": {
        "place": "pantry",
        "handler": "coke_dispenser",
        "payload": [{"sku": "coke", "quantity": 2}, {"sku": "chips", "quantity": 1}],
    },
    "dropoff": {
        "place": {"waypoint": "hardware_2"},
        "handler": "coke_ingestor",
        "payload": {"sku": "coke", "quantity": 2, "compartment": "left"},
    },
}
COMPOSE = {
    "category": "restock_linen",
    "detail": "Fetch linen, then restock ward 3",
    "phases": [
        {"activity": {"category": "go_to_place", "description": "linen_room"}},
        {
            "activity": {
                "category": "sequence",
                "description": {
                    "activities": [
                        {
                            "category": "go_to_place",
                            "description": {"place": "ward_3", "followed_by": ["dock"]},
                        },
                        {
                            "category": "perform_action",
                            "description": {
                                "category": "unload_linen",
                                "description": {"shelf": 2},
                                "unix_millis_action_duration_estimate": 60_000,
                                "use_tool_sink": False,
                            },
                        },
                    ]
                },
            },
            "on_cancel": [{"category": "go_to_place", "description": "dock"}],
        },
    ],
}
VALID_DESCRIPTIONS = {
    "clean": CLEAN,
    "patrol": PATROL,
    "delivery": DELIVERY,
    "compose": COMPOSE,
}


def problems_of(request: Any, extra: dict[str, Any] | None = None) -> list[Problem]:
    """Run the validator and return what it reported, [] when it accepted."""
    try:
        validate_task_request(request, extra or {})
    except RmfValidationError as error:
        return error.problems
    return []


# ---- valid requests -------------------------------------------------------------


def test_builtin_categories_are_open_rmfs_four() -> None:
    assert frozenset({"clean", "patrol", "delivery", "compose"}) == BUILTIN_CATEGORIES
    assert set(VALID_DESCRIPTIONS) == BUILTIN_CATEGORIES


@pytest.mark.parametrize("category", sorted(VALID_DESCRIPTIONS))
def test_valid_builtin_description_is_accepted(category: str) -> None:
    validate_task_request({"category": category, "description": VALID_DESCRIPTIONS[category]})


def test_every_optional_field_of_a_task_request_is_accepted() -> None:
    validate_task_request(
        {
            "unix_millis_earliest_start_time": 1_767_225_600_000,
            "unix_millis_request_time": 1_767_225_000_000,
            "priority": {"type": "binary", "value": 1},
            "category": "clean",
            "description": CLEAN,
            "labels": ["scheduler_rule=42", "dashboard"],
            "requester": "rmf-task-scheduler",
            "fleet_name": "cleaners",
        }
    )


def test_patrol_without_rounds_is_accepted() -> None:
    validate_task_request({"category": "patrol", "description": {"places": ["a"]}})


# ---- invalid requests: exact paths ----------------------------------------------


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            {"category": "clean", "description": {}},
            [(("description",), "'zone' is a required property")],
            id="clean-missing-zone",
        ),
        pytest.param(
            {"category": "clean", "description": {"zone": 3}},
            [(("description", "zone"), "3 is not of type 'string'")],
            id="clean-zone-not-string",
        ),
        pytest.param(
            {"category": "clean", "description": "lobby"},
            [(("description",), "'lobby' is not of type 'object'")],
            id="clean-description-not-object",
        ),
        pytest.param(
            {"category": "patrol", "description": {"places": "lobby"}},
            [(("description", "places"), "'lobby' is not of type 'array'")],
            id="patrol-places-not-list",
        ),
        pytest.param(
            {"category": "patrol", "description": {"places": ["a"], "rounds": 0}},
            [(("description", "rounds"), "0 is less than the minimum of 1")],
            id="patrol-zero-rounds",
        ),
        pytest.param(
            {"category": "patrol", "description": {"places": ["a", -1]}},
            [(("description", "places", 1), "-1 is less than the minimum of 0")],
            id="patrol-negative-waypoint-index",
        ),
        pytest.param(
            {
                "category": "patrol",
                "description": {"places": [{"waypoint": "a", "orientation": "N"}]},
            },
            [
                (
                    ("description", "places", 0, "orientation"),
                    "'N' is not of type 'number'",
                )
            ],
            id="patrol-orientation-not-number",
        ),
        pytest.param(
            {"category": "delivery", "description": {"pickup": DELIVERY["pickup"]}},
            [(("description",), "'dropoff' is a required property")],
            id="delivery-missing-dropoff",
        ),
        pytest.param(
            {
                "category": "delivery",
                "description": {
                    "pickup": {"place": "a", "payload": [{"sku": "x", "quantity": -1}]},
                    "dropoff": {"place": "b"},
                },
            },
            [
                (("description", "dropoff"), "'payload' is a required property"),
                (
                    ("description", "pickup", "payload", 0, "quantity"),
                    "-1 is less than the minimum of 0",
                ),
            ],
            id="delivery-negative-quantity-and-missing-payload",
        ),
        pytest.param(
            {"category": "compose", "description": {"phases": [{}]}},
            [(("description", "phases", 0), "'activity' is a required property")],
            id="compose-phase-without-activity",
        ),
        pytest.param(
            {
                "category": "compose",
                "description": {"phases": [{"activity": {"category": "go_to_place"}}]},
            },
            [
                (
                    ("description", "phases", 0, "activity"),
                    "'description' is a required property",
                )
            ],
            id="compose-activity-without-description",
        ),
        pytest.param(
            {"category": "fly", "description": {}},
            [
                (
                    ("category",),
                    "unknown task category 'fly'; accepted: clean, compose, delivery, patrol",
                )
            ],
            id="unknown-category",
        ),
        pytest.param(
            {"category": 5, "description": {}},
            [(("category",), "5 is not of type 'string'")],
            id="category-not-string",
        ),
        pytest.param(
            {},
            [
                ((), "'category' is a required property"),
                ((), "'description' is a required property"),
            ],
            id="empty-request",
        ),
        pytest.param(
            {"category": "clean"},
            [((), "'description' is a required property")],
            id="missing-description",
        ),
        pytest.param(
            [],
            [((), "[] is not of type 'object'")],
            id="request-not-object",
        ),
        pytest.param(
            {"category": "clean", "description": CLEAN, "labels": ["ok", 1]},
            [(("labels", 1), "1 is not of type 'string'")],
            id="label-not-string",
        ),
        pytest.param(
            {"category": "clean", "description": CLEAN, "requester": None},
            [(("requester",), "None is not of type 'string'")],
            id="requester-not-string",
        ),
        pytest.param(
            {
                "category": "clean",
                "description": CLEAN,
                "unix_millis_earliest_start_time": "07:00",
            },
            [
                (
                    ("unix_millis_earliest_start_time",),
                    "'07:00' is not of type 'integer'",
                )
            ],
            id="start-time-not-integer",
        ),
        pytest.param(
            {
                "category": "clean",
                "description": CLEAN,
                "priority": {"type": "binary", "value": 2},
            },
            [(("priority", "value"), "2 is greater than the maximum of 1")],
            id="priority-out-of-range",
        ),
        pytest.param(
            {"category": "clean", "description": CLEAN, "priority": {"value": 1}},
            [(("priority",), "'type' is a required property")],
            id="priority-missing-type",
        ),
        pytest.param(
            {"category": "clean", "description": CLEAN, "priority": "high"},
            [(("priority",), "'high' is not of type 'object'")],
            id="priority-not-object",
        ),
    ],
)
def test_invalid_request_reports_exact_paths(request_: Any, expected: list[Problem]) -> None:
    assert problems_of(request_) == expected


def test_all_problems_are_reported_at_once_in_path_order() -> None:
    problems = problems_of(
        {
            "category": "clean",
            "description": {"zone": 1},
            "labels": [2],
            "priority": {"type": "binary", "value": -1},
        }
    )

    assert problems == [
        (("description", "zone"), "1 is not of type 'string'"),
        (("labels", 0), "2 is not of type 'string'"),
        (("priority", "value"), "-1 is less than the minimum of 0"),
    ]


def test_error_is_a_value_error_whose_message_names_each_field() -> None:
    with pytest.raises(ValueError, match=r"description\.zone: 3 is not of type") as info:
        validate_task_request({"category": "clean", "description": {"zone": 3}, "labels": [1]})

    assert isinstance(info.value, RmfValidationError)
    assert "labels[0]: 1 is not of type 'string'" in str(info.value)


# ---- a site's extra categories --------------------------------------------------

DISINFECT = {
    "type": "object",
    "properties": {"zone": {"type": "string"}, "minutes": {"type": "integer"}},
    "required": ["zone"],
}


def test_extra_category_with_schema_accepts_a_matching_description() -> None:
    validate_task_request(
        {"category": "disinfect", "description": {"zone": "ward_3", "minutes": 20}},
        {"disinfect": DISINFECT},
    )


def test_extra_category_with_schema_reports_paths_under_description() -> None:
    problems = problems_of(
        {"category": "disinfect", "description": {"minutes": "20"}},
        {"disinfect": DISINFECT},
    )

    assert problems == [
        (("description",), "'zone' is a required property"),
        (("description", "minutes"), "'20' is not of type 'integer'"),
    ]


@pytest.mark.parametrize("description", [{"anything": [1, 2]}, "free text", 42, None])
def test_extra_category_mapped_to_none_accepts_any_description(
    description: Any,
) -> None:
    validate_task_request(
        {"category": "custom_dance", "description": description},
        {"custom_dance": None},
    )


def test_extra_category_mapped_to_none_still_needs_a_description() -> None:
    problems = problems_of({"category": "custom_dance"}, {"custom_dance": None})

    assert problems == [((), "'description' is a required property")]


def test_unknown_category_lists_the_sites_extras_too() -> None:
    problems = problems_of(
        {"category": "fly", "description": {}},
        {"disinfect": DISINFECT, "custom_dance": None},
    )

    accepted = "clean, compose, custom_dance, delivery, disinfect, patrol"
    assert problems == [(("category",), f"unknown task category 'fly'; accepted: {accepted}")]


def test_extra_schema_may_ref_open_rmf_schemas_by_id() -> None:
    go_and_wait = {
        "type": "object",
        "properties": {"place": {"$ref": PLACE_ID}, "seconds": {"type": "integer"}},
        "required": ["place"],
    }
    extra = {"go_and_wait": go_and_wait}

    validate_task_request({"category": "go_and_wait", "description": {"place": {"waypoint": 4}}}, extra)
    assert problems_of({"category": "go_and_wait", "description": {"place": -2}}, extra) == [
        (("description", "place"), "-2 is less than the minimum of 0")
    ]


def test_extra_schema_in_an_older_draft_is_honoured() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"shelves": {"type": "array", "items": [{"type": "integer"}]}},
    }

    problems = problems_of(
        {"category": "restock", "description": {"shelves": ["top"]}},
        {"restock": draft7},
    )

    assert problems == [(("description", "shelves", 0), "'top' is not of type 'integer'")]


def test_builtin_schema_wins_over_an_extra_of_the_same_name() -> None:
    problems = problems_of({"category": "clean", "description": {}}, {"clean": None})

    assert problems == [(("description",), "'zone' is a required property")]


def test_check_extra_categories_accepts_schemas_and_none() -> None:
    check_extra_categories({"disinfect": DISINFECT, "custom_dance": None})
    check_extra_categories({})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"clean": None}, "'clean' is built in"),
        ({"disinfect": {"type": 5}}, "'disinfect' is not a valid JSON schema"),
        (
            {"disinfect": "zone"},
            "'disinfect' must map to a JSON schema or None, not str",
        ),
    ],
)
def test_check_extra_categories_names_the_bad_entry(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_extra_categories(extra)


# ---- any Open-RMF message -------------------------------------------------------


def test_validate_message_accepts_a_dispatch_task_request() -> None:
    message = {
        "type": "dispatch_task_request",
        "request": {"category": "patrol", "description": PATROL},
    }

    assert validate_message("dispatch_task_request", message) == []
    assert validate_message("dispatch_task_request.json", message) == []


def test_validate_message_reports_problems_rooted_at_the_message() -> None:
    message = {"type": "robot_task_request", "request": {"category": "clean"}}

    assert validate_message("dispatch_task_request", message) == [
        (("request",), "'description' is a required property"),
        (("type",), "'robot_task_request' is not one of ['dispatch_task_request']"),
    ]


def test_validate_message_checks_robot_task_requests() -> None:
    message = {
        "type": "robot_task_request",
        "robot": "tinyRobot1",
        "fleet": "tinyRobot",
        "request": {"category": "clean", "description": CLEAN},
    }

    assert validate_message("robot_task_request", message) == []
    assert validate_message("robot_task_request", {"type": "robot_task_request"}) == [
        ((), "'fleet' is a required property"),
        ((), "'request' is a required property"),
        ((), "'robot' is a required property"),
    ]


def test_robot_task_request_type_is_not_pinned_upstream() -> None:
    """Open-RMF writes ``constant`` (not ``const``): any ``type`` string passes."""
    message = {
        "type": "anything",
        "robot": "r",
        "fleet": "f",
        "request": {"category": "clean", "description": CLEAN},
    }

    assert validate_message("robot_task_request", message) == []


def test_validate_message_checks_dispatch_task_responses() -> None:
    accepted = {"success": True, "state": {"booking": {"id": "clean.lobby-7"}}}
    refused = {
        "success": False,
        "errors": [{"code": 1, "category": "Rejected", "detail": "no fleet"}],
    }

    assert validate_message("dispatch_task_response", accepted) == []
    assert validate_message("dispatch_task_response", refused) == []
    assert validate_message("dispatch_task_response", {"success": True, "state": {"booking": {}}}) == [
        (("state", "booking"), "'id' is a required property")
    ]


def test_validate_message_checks_task_state_and_error() -> None:
    assert validate_message("task_state", {"booking": {"id": "t"}}) == []
    assert validate_message("task_state", {}) == [((), "'booking' is a required property")]
    assert validate_message("error", {"code": 3, "detail": "x"}) == []
    assert validate_message("error", {"code": -1}) == [(("code",), "-1 is less than the minimum of 0")]


def test_validate_message_refuses_an_unknown_schema_name() -> None:
    with pytest.raises(LookupError, match="no packaged RMF schema named 'nope'"):
        validate_message("nope", {})


def test_schema_names_are_the_packaged_file_names() -> None:
    names = schema_names()

    assert len(names) == 63
    assert {
        "dispatch_task_request",
        "dispatch_task_response",
        "robot_task_request",
        "task_request",
        "task_state",
        "error",
        "place",
        "priority_description__binary",
    } <= names
    assert {f"task_description__{c}" for c in BUILTIN_CATEGORIES} <= names
    # Upstream's $id differs from the file name here; the file name is what we accept.
    assert "undo_skip_phase_request" in names
    assert "undo_phase_skip_request" not in names


def test_every_packaged_schema_is_valid_and_every_ref_resolves() -> None:
    registry = rmf_schema._registry()
    for name in sorted(schema_names()):
        schema = rmf_schema._schemas()[name]
        Draft202012Validator.check_schema(schema)
        resolver = registry.resolver(base_uri=schema["$id"])
        for ref in _refs(schema):
            resolver.lookup(ref)  # raises if unresolvable


def test_schemas_are_loaded_once() -> None:
    assert rmf_schema._schemas() is rmf_schema._schemas()
    assert rmf_schema._validator("task_request") is rmf_schema._validator("task_request")


def _refs(node: Any) -> Iterator[str]:
    """Yield every ``$ref`` in a schema, however deep."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
