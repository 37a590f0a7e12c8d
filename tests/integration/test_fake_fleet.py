"""The fake fleet manager, over real sockets: what end-to-end tests will rely on.

Each test starts its own fleet in the test's event loop (port 0) and talks to it with
httpx and a websockets client; one starts it as a process, as e2e tests do.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from task_scheduler.domain.rmf_schema import validate_message
from task_scheduler.testing.fake_fleet import (
    FakeFleetHandle,
    main,
    parse_plan,
    running_fake_fleet,
    start_fake_fleet_process,
)

TASK_LABEL = "task_scheduler.task"
SECRET = "a-test-secret-of-at-least-32-bytes"
JWT = {"jwt_secret": SECRET, "jwt_audience": "rmf_api_server", "jwt_issuer": "test-idp"}


def task_request(occurrence: str = "r1@2026-01-05T07:00:00Z", **changes: Any) -> dict[str, Any]:
    request = {
        "category": "clean",
        "description": {"zone": "lobby"},
        "unix_millis_earliest_start_time": 1_767_596_400_000,
        "priority": {"type": "binary", "value": 1},
        "labels": [f"{TASK_LABEL}={occurrence}", "dashboard"],
        "requester": "task_scheduler",
    }
    return {**request, **changes}


def dispatch(request: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "dispatch_task_request", "request": request or task_request()}


@pytest.fixture
async def fleet() -> AsyncIterator[FakeFleetHandle]:
    async with running_fake_fleet() as handle:
        yield handle


@pytest.fixture
async def client(fleet: FakeFleetHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.url, timeout=5, trust_env=False) as client:
        yield client


async def test_a_valid_dispatch_is_accepted_answered_per_schema_and_recorded(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    before = time.time()
    response = await client.post("/tasks/dispatch_task", json=dispatch())
    after = time.time()

    assert response.status_code == 200
    answer = response.json()
    assert validate_message("dispatch_task_response", answer) == []
    request, booking = task_request(), answer["state"]["booking"]
    assert booking["id"] == "clean.dispatch-1"
    for key in ("unix_millis_earliest_start_time", "priority", "labels", "requester"):
        assert booking[key] == request[key]
    assert before * 1000 - 1 <= booking["unix_millis_request_time"] <= after * 1000 + 1
    assert answer["state"]["category"] == "clean"

    (received,) = fleet.recorder.records
    assert before <= received.time <= after
    assert (received.transport, received.route) == ("http", "POST /tasks/dispatch_task")
    assert (received.status, received.task_id, received.problems) == (200, "clean.dispatch-1", [])
    assert received.body == dispatch() and received.labels == request["labels"]
    listed = (await client.get("/_fake/received")).json()
    assert listed == [received.to_json()]
    second = await client.post("/tasks/dispatch_task", json=dispatch())
    assert second.json()["state"]["booking"]["id"] == "clean.dispatch-2"


async def test_an_invalid_description_gets_400_naming_the_place(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    body = dispatch(task_request(description={"zone": 7}))

    response = await client.post("/tasks/dispatch_task", json=body)

    assert response.status_code == 400
    answer = response.json()
    assert validate_message("dispatch_task_response", answer) == []
    assert answer["success"] is False
    (error,) = answer["errors"]
    assert error["code"] == 5 and error["detail"].startswith("request.description.zone: ")
    (received,) = fleet.recorder.records
    assert [path for path, _ in received.problems] == [("request", "description", "zone")]
    assert (received.status, received.accepted) == (400, False)
    assert (await client.get("/tasks")).json() == []


async def test_a_body_that_is_not_json_or_not_a_dispatch_request_gets_400(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    not_json = await client.post("/tasks/dispatch_task", content=b"{oops")
    wrong_type = await client.post("/tasks/dispatch_task", json={**dispatch(), "type": "robot_task_request"})
    unknown_category = await client.post("/tasks/dispatch_task", json=dispatch(task_request(category="x")))

    assert [r.status_code for r in (not_json, wrong_type, unknown_category)] == [400, 400, 400]
    assert not_json.json()["errors"][0]["detail"].startswith("(message): not JSON")
    assert wrong_type.json()["errors"][0]["detail"].startswith("type: ")
    assert unknown_category.json()["errors"][0]["detail"].startswith(
        "request.category: unknown task category"
    )
    assert fleet.recorder.records[0].body == "{oops"
    assert fleet.recorder.accepted() == []


async def test_a_robot_task_is_assigned_to_the_robot_and_its_type_is_checked(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    body = {
        "type": "robot_task_request",
        "robot": "tinyRobot1",
        "fleet": "tinyRobot",
        "request": task_request(),
    }

    response = await client.post("/tasks/robot_task", json=body)
    mistyped = await client.post("/tasks/robot_task", json={**body, "type": "dispatch_task_request"})

    assert response.status_code == 200
    state = response.json()["state"]
    assert validate_message("robot_task_response", response.json()) == []
    assert state["booking"]["id"] == "clean.direct-1"
    assert state["assigned_to"] == {"group": "tinyRobot", "name": "tinyRobot1"}
    assert mistyped.status_code == 400
    assert validate_message("robot_task_response", mistyped.json()) == []
    assert mistyped.json()["errors"][0]["detail"] == "type: 'robot_task_request' was expected"
    assert [r.route for r in fleet.recorder.records] == ["POST /tasks/robot_task"] * 2


async def test_tasks_are_found_by_label(client: httpx.AsyncClient) -> None:
    for occurrence, extra in (("a", []), ("b", ["site=east"]), ("c", ["site=west", "dashboard="])):
        request = task_request(occurrence, labels=[f"{TASK_LABEL}={occurrence}", "dashboard", *extra])
        assert (await client.post("/tasks/dispatch_task", json=dispatch(request))).status_code == 200
    rejected = task_request("d", description={})
    assert (await client.post("/tasks/dispatch_task", json=dispatch(rejected))).status_code == 400

    async def found(*labels: str) -> list[str]:
        response = await client.get("/tasks", params=[("label", label) for label in labels])
        assert response.status_code == 200
        return [state["booking"]["id"] for state in response.json()]

    assert await found(f"{TASK_LABEL}=b") == ["clean.dispatch-2"]
    assert await found(f"{TASK_LABEL}=d") == []
    assert await found("dashboard") == await found("dashboard=") == await found()
    assert len(await found()) == 3
    assert await found("site=west", f"{TASK_LABEL}=c") == ["clean.dispatch-3"]
    assert await found("site=west", f"{TASK_LABEL}=a") == []


async def test_counts_per_label_value_and_reset(fleet: FakeFleetHandle, client: httpx.AsyncClient) -> None:
    for occurrence in ("a", "b", "a"):
        await client.post("/tasks/dispatch_task", json=dispatch(task_request(occurrence)))
    await client.post("/tasks/dispatch_task", json=dispatch(task_request("c", category="nope")))

    counts = await client.get("/_fake/counts", params={"label_key": TASK_LABEL})
    assert counts.json() == {"a": 2, "b": 1} == fleet.recorder.counts(TASK_LABEL)
    assert (await client.get("/_fake/counts", params={"label_key": "dashboard"})).json() == {"": 3}
    assert (await client.get("/_fake/counts")).status_code == 422

    assert (await client.delete("/_fake/received")).status_code == 204
    assert (await client.get("/_fake/received")).json() == []
    assert (await client.get("/tasks")).json() == []
    again = await client.post("/tasks/dispatch_task", json=dispatch())
    assert again.json()["state"]["booking"]["id"] == "clean.dispatch-4"


async def test_a_behaviour_plan_is_applied_in_order_then_accepts_again(client: httpx.AsyncClient) -> None:
    plan = [{"mode": "reject", "count": 2}, {"mode": "fail", "count": 1}]
    assert (await client.put("/_fake/behaviour", json=plan)).json() == [
        {"mode": "reject", "count": 2},
        {"mode": "fail", "count": 1, "accepted": False},
    ]

    statuses = [(await client.post("/tasks/dispatch_task", json=dispatch())).status_code for _ in range(2)]
    assert (await client.get("/_fake/behaviour")).json() == [{"mode": "fail", "count": 1, "accepted": False}]
    statuses += [(await client.post("/tasks/dispatch_task", json=dispatch())).status_code for _ in range(2)]

    assert statuses == [400, 400, 500, 200]
    assert (await client.get("/_fake/behaviour")).json() == []


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"mode": "explode"}, "mode must be one of"),
        ({"mode": "delay"}, "delay needs seconds"),
        ({"mode": "delay", "seconds": -1}, "delay needs seconds"),
        ({"mode": "drop", "count": 0}, "count must be an integer >= 1"),
        ({"mode": "drop", "count": True}, "count must be an integer >= 1"),
        ([{"mode": "down"}, {"mode": "accept"}], "step 0: only the last step may omit count"),
        ({"mode": "accept", "seconds": 1}, "seconds applies to delay only"),
        ({"mode": "reject", "accepted": True}, "accepted is a boolean, for fail only"),
        ({"mode": "accept", "times": 2}, "unknown field(s): times"),
        ("accept", "expected an object"),
    ],
)
def test_a_bad_plan_is_refused_with_the_reason(plan: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_plan(plan)


async def test_a_bad_plan_gets_422_and_leaves_the_plan_alone(client: httpx.AsyncClient) -> None:
    await client.put("/_fake/behaviour", json={"mode": "reject", "count": 1})

    refused = await client.put("/_fake/behaviour", json={"mode": "delay"})
    not_json = await client.put("/_fake/behaviour", content=b"{")

    assert refused.status_code == not_json.status_code == 422
    assert refused.json() == {"detail": "behaviour: delay needs seconds, a number >= 0"}
    assert (await client.get("/_fake/behaviour")).json() == [{"mode": "reject", "count": 1}]


async def test_reject_answers_400_and_keeps_nothing(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    fleet.behave({"mode": "reject", "count": 1})

    response = await client.post("/tasks/dispatch_task", json=dispatch())

    assert response.status_code == 400
    assert validate_message("dispatch_task_response", response.json()) == []
    assert response.json()["errors"][0]["category"] == "Rejected"
    assert fleet.recorder.records[0].mode == "reject" and fleet.recorder.accepted() == []


@pytest.mark.parametrize("accepted", [False, True])
async def test_fail_answers_500_and_keeps_the_task_only_if_told(
    fleet: FakeFleetHandle, client: httpx.AsyncClient, accepted: bool
) -> None:
    fleet.behave({"mode": "fail", "accepted": accepted})

    response = await client.post("/tasks/dispatch_task", json=dispatch())

    assert response.status_code == 500
    assert fleet.recorder.records[0].status == 500
    assert len((await client.get("/tasks")).json()) == int(accepted)


async def test_delay_records_at_arrival_so_a_client_timeout_is_ambiguous(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    fleet.behave({"mode": "delay", "seconds": 30, "count": 1}, {"mode": "delay", "seconds": 0.05, "count": 1})

    with pytest.raises(httpx.ReadTimeout):
        await client.post("/tasks/dispatch_task", json=dispatch(), timeout=0.3)
    (received,) = fleet.recorder.records
    assert received.accepted and received.mode == "delay"
    found = (await client.get("/tasks", params={"label": f"{TASK_LABEL}=r1@2026-01-05T07:00:00Z"})).json()
    assert [state["booking"]["id"] for state in found] == [received.task_id]

    started = time.monotonic()
    answered = await client.post("/tasks/dispatch_task", json=dispatch())
    assert answered.status_code == 200 and time.monotonic() - started >= 0.05


async def test_drop_keeps_the_task_and_cuts_the_connection(
    fleet: FakeFleetHandle, client: httpx.AsyncClient
) -> None:
    fleet.behave({"mode": "drop", "count": 1})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.post("/tasks/dispatch_task", json=dispatch())

    (received,) = fleet.recorder.records
    assert (received.mode, received.status, received.accepted) == ("drop", None, True)
    assert fleet.recorder.counts(TASK_LABEL) == {"r1@2026-01-05T07:00:00Z": 1}
    assert (await client.post("/tasks/dispatch_task", json=dispatch())).status_code == 200


async def test_down_refuses_without_recording(fleet: FakeFleetHandle, client: httpx.AsyncClient) -> None:
    fleet.behave({"mode": "down", "count": 2})

    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post("/tasks/dispatch_task", json=dispatch())

    assert fleet.recorder.records == []
    assert (await client.post("/tasks/dispatch_task", json=dispatch())).status_code == 200


def envelope(request_id: str, message: Any) -> str:
    return json.dumps({"request_id": request_id, "json_msg": json.dumps(message)})


async def answer(ws: ClientConnection) -> tuple[str, dict[str, Any]]:
    data = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return data["request_id"], json.loads(data["json_msg"])


async def test_the_bridge_answers_concurrently_matched_by_request_id(fleet: FakeFleetHandle) -> None:
    fleet.behave({"mode": "delay", "seconds": 0.5, "count": 1})
    robot = {"type": "robot_task_request", "robot": "r1", "fleet": "f", "request": task_request("b")}

    async with connect(fleet.ws_url) as ws:
        await ws.send(envelope("slow", dispatch(task_request("a"))))
        await fleet.recorder.wait_for(lambda r: len(r.records) == 1)
        await ws.send(envelope("quick", robot))
        first, second = await answer(ws), await answer(ws)

    assert [first[0], second[0]] == ["quick", "slow"]
    assert validate_message("robot_task_response", first[1]) == []
    assert first[1]["state"]["booking"]["labels"][0] == f"{TASK_LABEL}=b"
    assert validate_message("dispatch_task_response", second[1]) == []
    assert second[1]["state"]["booking"]["labels"][0] == f"{TASK_LABEL}=a"
    assert [(r.transport, r.route, r.request_id) for r in fleet.recorder.records] == [
        ("ws", "WS /ws", "slow"),
        ("ws", "WS /ws", "quick"),
    ]


async def test_the_bridge_answers_bad_messages_that_have_a_request_id(fleet: FakeFleetHandle) -> None:
    async with connect(fleet.ws_url) as ws:
        await ws.send("not json")
        await ws.send(json.dumps({"json_msg": json.dumps(dispatch())}))
        await ws.send(json.dumps({"request_id": "garbled", "json_msg": "{"}))
        garbled = await answer(ws)
        await ws.send(envelope("invalid", dispatch(task_request(description={}))))
        invalid = await answer(ws)
        await ws.send(envelope("other", {"type": "cancel_task_request", "task_id": "x"}))
        other = await answer(ws)

    assert garbled[0] == "garbled" and garbled[1]["errors"][0]["detail"].startswith("json_msg: not JSON")
    assert invalid[0] == "invalid" and validate_message("dispatch_task_response", invalid[1]) == []
    assert invalid[1]["errors"][0]["detail"].startswith("request.description: ")
    assert other[0] == "other" and other[1]["errors"][0]["detail"].startswith("type: expected one of")
    statuses = [(r.request_id, r.status, r.accepted) for r in fleet.recorder.records]
    assert statuses == [
        (None, None, False),
        (None, None, False),
        ("garbled", 400, False),
        ("invalid", 400, False),
        ("other", 400, False),
    ]


async def test_the_bridge_drops_the_connection_after_keeping_the_task(fleet: FakeFleetHandle) -> None:
    fleet.behave({"mode": "drop", "count": 1})

    async with connect(fleet.ws_url) as ws:
        await ws.send(envelope("lost", dispatch()))
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)

    (received,) = fleet.recorder.records
    assert (received.request_id, received.accepted, received.status) == ("lost", True, None)


async def test_with_a_jwt_secret_every_fleet_route_needs_a_valid_token() -> None:
    async with running_fake_fleet(**JWT) as fleet:
        now = int(time.time())
        claims = {"aud": JWT["jwt_audience"], "iss": JWT["jwt_issuer"], "iat": now, "exp": now + 60}
        bad_tokens = {
            "none": None,
            "wrong audience": jwt.encode({**claims, "aud": "x", "preferred_username": "u"}, SECRET),
            "wrong issuer": jwt.encode({**claims, "iss": "x", "preferred_username": "u"}, SECRET),
            "wrong secret": jwt.encode({**claims, "preferred_username": "u"}, SECRET[::-1]),
            "expired": jwt.encode({**claims, "exp": now - 60, "preferred_username": "u"}, SECRET),
            "no username": jwt.encode(claims, SECRET),
        }
        async with httpx.AsyncClient(base_url=fleet.url, trust_env=False, timeout=5) as client:
            for name, token in bad_tokens.items():
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = await client.post("/tasks/dispatch_task", json=dispatch(), headers=headers)
                assert response.status_code == 401, name
            assert (await client.get("/tasks")).status_code == 401
            with pytest.raises(InvalidStatus) as denied:
                async with connect(fleet.ws_url):
                    pass
            assert denied.value.response.status_code == 401
            assert (await client.get("/_fake/received")).status_code == 200
            assert [r.status for r in fleet.recorder.records] == [401] * 8

            headers = {"Authorization": f"Bearer {fleet.token('alice')}"}
            accepted = await client.post("/tasks/dispatch_task", json=dispatch(), headers=headers)
            assert accepted.status_code == 200
            assert (await client.get("/tasks", headers=headers)).status_code == 200
            async with connect(fleet.ws_url, additional_headers=headers) as ws:
                await ws.send(envelope("1", dispatch()))
                assert (await answer(ws))[1]["success"] is True
        assert [r.user for r in fleet.recorder.records[-3:]] == ["alice"] * 3


async def test_without_a_jwt_secret_tokens_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/tasks/dispatch_task", json=dispatch(), headers={"Authorization": "Bearer x"}
    )

    assert response.status_code == 200


async def test_extra_categories_are_accepted_as_configured() -> None:
    async with running_fake_fleet(extra_categories={"tidy": None}) as fleet:
        async with httpx.AsyncClient(base_url=fleet.url, trust_env=False, timeout=5) as client:
            request = task_request(category="tidy", description={"anything": [1]})
            response = await client.post("/tasks/dispatch_task", json=dispatch(request))
    assert response.status_code == 200
    assert response.json()["state"]["booking"]["id"] == "tidy.dispatch-1"


async def test_half_a_jwt_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="needs both an audience and an issuer"):
        async with running_fake_fleet(jwt_secret="s"):
            pass
    with pytest.raises(SystemExit):
        main(["--jwt-audience", "a"])


@pytest.mark.e2e
def test_the_process_entry_point_serves_the_fleet() -> None:
    process, url = start_fake_fleet_process(**JWT)
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=5) as client:
            claims = {"aud": "rmf_api_server", "iss": "test-idp", "preferred_username": "bob"}
            token = jwt.encode(claims, SECRET)
            headers = {"Authorization": f"Bearer {token}"}
            assert client.post("/tasks/dispatch_task", json=dispatch()).status_code == 401
            response = client.post("/tasks/dispatch_task", json=dispatch(), headers=headers)
            assert response.status_code == 200
            counts = client.get("/_fake/counts", params={"label_key": TASK_LABEL}).json()
            assert counts == {"r1@2026-01-05T07:00:00Z": 1}
            assert client.put("/_fake/behaviour", json={"mode": "drop", "count": 1}).status_code == 200
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                client.post("/tasks/dispatch_task", json=dispatch(), headers=headers)
            assert [r["status"] for r in client.get("/_fake/received").json()] == [401, 200, None]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
