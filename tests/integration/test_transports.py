"""The outbound RMF transports against the real fake fleet, over real sockets.

Each fleet behaviour stands for something a real fleet manager or network does; the
tests pin what the dispatcher is told about it, above all whether the fleet may have
the task (``ambiguous``), since that decides between a retry and a lookup. Target
validation and the answer-reading helpers are checked first, without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pydantic
import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from task_scheduler.config import build_settings
from task_scheduler.domain.allowlist import DEFAULT_ALLOWLIST, Allowlist
from task_scheduler.domain.errors import Invalid
from task_scheduler.domain.targets import (
    RmfHttpTarget,
    RmfWsTarget,
    public_view,
    target_adapter,
)
from task_scheduler.kinds.base import TransportContext
from task_scheduler.kinds.registry import Registry
from task_scheduler.testing.fake_fleet import FakeFleetHandle, running_fake_fleet
from task_scheduler.testing.service_process import free_port
from task_scheduler.transports import (
    BearerAuth,
    Delivery,
    LookupFailed,
    Outcome,
    RmfHttpTransport,
    RmfWsTransport,
)
from task_scheduler.transports.base import EXCERPT_LIMIT, RESPONSE_LIMIT, bounded, read_answer

TASK_LABEL = "task_scheduler.task"
SECRET = "a-test-secret-of-at-least-32-bytes!"
AUDIENCE, ISSUER = "rmf_api_server", "rmf_task_scheduler"
JWT_FLEET = {"jwt_secret": SECRET, "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER}


def label(occurrence: str) -> str:
    return f"{TASK_LABEL}={occurrence}"


def dispatch(occurrence: str = "r1@2026-01-05T07:00:00Z", **changes: Any) -> dict[str, Any]:
    request = {
        "category": "clean",
        "description": {"zone": "lobby"},
        "labels": [label(occurrence), "task_scheduler.rule=r1"],
        "requester": "task_scheduler",
        **changes,
    }
    return {"type": "dispatch_task_request", "request": request}


def robot_task(occurrence: str = "r1@2026-01-05T07:00:00Z") -> dict[str, Any]:
    request = dispatch(occurrence)["request"]
    return {"type": "robot_task_request", "robot": "tinyRobot1", "fleet": "tinyRobot", "request": request}


class LogWaiter(logging.Handler):
    """An event set when a logger emits a message containing ``text``: no polling, no sleeping."""

    def __init__(self, logger: str, text: str) -> None:
        super().__init__(logging.DEBUG)
        self._logger, self._text, self._event = logging.getLogger(logger), text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self._text in record.getMessage():
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def __enter__(self) -> LogWaiter:
        self._level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


@pytest.fixture
async def fleet() -> AsyncIterator[FakeFleetHandle]:
    async with running_fake_fleet() as handle:
        yield handle


@pytest.fixture
async def jwt_fleet() -> AsyncIterator[FakeFleetHandle]:
    async with running_fake_fleet(**JWT_FLEET) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def over_http(http: aiohttp.ClientSession, base_url: str, **options: Any) -> RmfHttpTransport:
    return RmfHttpTransport(RmfHttpTarget(base_url=base_url, **options), http)


@pytest.fixture
async def transport(fleet: FakeFleetHandle, http: aiohttp.ClientSession) -> RmfHttpTransport:
    return over_http(http, fleet.url, timeout_s=5)


@pytest.fixture
async def ws(fleet: FakeFleetHandle) -> AsyncIterator[RmfWsTransport]:
    transport = RmfWsTransport(RmfWsTarget(url=fleet.ws_url, timeout_s=5))
    yield transport
    await transport.aclose()


# --- targets (no sockets) --------------------------------------------------------------


def test_a_target_is_chosen_by_kind_and_its_url_normalised() -> None:
    http_target = target_adapter.validate_python({"kind": "rmf_http", "base_url": " https://rmf:8000/api/ "})
    ws_target = target_adapter.validate_python({"kind": "rmf_ws", "url": "wss://rmf/ws"})

    assert isinstance(http_target, RmfHttpTarget) and http_target.base_url == "https://rmf:8000/api"
    assert isinstance(ws_target, RmfWsTarget) and ws_target.url == "wss://rmf/ws"
    assert (ws_target.timeout_s, ws_target.reconnect_max_s, ws_target.username) == (
        10.0,
        30.0,
        "task_scheduler",
    )


def test_a_target_of_a_kind_nothing_installed_is_refused_naming_the_known_kinds() -> None:
    registry = Registry(build_settings({}, environ={}))
    with pytest.raises(Invalid) as refused:
        registry.target(target_adapter.validate_python({"kind": "ftp", "host": "files"}))
    assert refused.value.problems == [
        (
            ("config", "kind"),
            "no target kind 'ftp' is installed (known: database, directory, http, rmf_http, rmf_ws)",
        )
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"kind": "rmf_http", "base_url": "ftp://rmf"}, "the scheme must be http or https"),
        ({"kind": "rmf_http", "base_url": "ws://rmf"}, "the scheme must be http or https"),
        ({"kind": "rmf_ws", "url": "http://rmf/ws"}, "the scheme must be ws or wss"),
        ({"kind": "rmf_http", "base_url": "http://"}, "a host is required"),
        ({"kind": "rmf_http", "base_url": "http://rmf:99999"}, "not a valid URL"),
        ({"kind": "rmf_http", "base_url": "http://u:p@rmf"}, "credentials do not belong in the URL"),
        ({"kind": "rmf_http", "base_url": "http://rmf/?a=1"}, "a query or fragment is not allowed"),
        ({"kind": "rmf_ws", "url": "ws://rmf/ws#x"}, "a query or fragment is not allowed"),
        ({"kind": "rmf_http", "base_url": "http://rmf", "timeout_s": 0}, "greater than 0"),
        ({"kind": "rmf_http", "base_url": "http://rmf", "timeout_s": 301}, "less than or equal to 300"),
        ({"kind": "rmf_ws", "url": "ws://rmf", "reconnect_max_s": 0}, "greater than 0"),
        ({"kind": "rmf_http", "base_url": "http://rmf", "token": ""}, "at least 1 character"),
        ({"kind": "rmf_http", "base_url": "http://rmf", "retries": 3}, "Extra inputs are not permitted"),
        ({"kind": "rmf_ws", "base_url": "http://rmf"}, "url"),
    ],
)
def test_a_bad_target_is_refused_with_the_reason(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=reason):
        target_adapter.validate_python(data)


def test_token_and_jwt_secret_are_mutually_exclusive_and_errors_do_not_echo_them() -> None:
    data = {"kind": "rmf_http", "base_url": "http://rmf", "token": "tok-123", "jwt_secret": SECRET}

    with pytest.raises(pydantic.ValidationError) as refused:
        target_adapter.validate_python(data)

    assert "token and jwt_secret are mutually exclusive" in str(refused.value)
    assert "tok-123" not in str(refused.value) and SECRET not in str(refused.value)
    assert "tok-123" not in repr(refused.value.errors(include_input=False))
    with pytest.raises(pydantic.ValidationError, match="mutually exclusive") as direct:
        RmfWsTarget(url="ws://rmf", token="tok-123", jwt_secret=SECRET)
    assert "tok-123" not in str(direct.value)


def test_secrets_are_hidden_from_repr_and_public_view_but_kept_for_storage() -> None:
    with_token = RmfHttpTarget(base_url="http://rmf", token="tok-123")
    with_secret = RmfWsTarget(url="ws://rmf/ws", jwt_secret=SECRET)
    plain = RmfHttpTarget(base_url="http://rmf")

    for config in (with_token, with_secret):
        for text in (repr(config), str(config), repr(BearerAuth(config)), json.dumps(public_view(config))):
            assert "tok-123" not in text and SECRET not in text
    assert public_view(with_token)["secrets_set"] == ["token"]
    assert public_view(with_secret)["secrets_set"] == ["jwt_secret"]
    assert public_view(plain) == {
        "jwt_audience": "rmf_api_server",
        "jwt_issuer": "rmf_task_scheduler",
        "username": "task_scheduler",
        "timeout_s": 10.0,
        "kind": "rmf_http",
        "base_url": "http://rmf",
        "max_connections": 8,
        "secrets_set": [],
    }
    assert target_adapter.validate_python(with_token.model_dump()) == with_token
    assert repr(BearerAuth(with_secret)) == "BearerAuth(mode='jwt', username='task_scheduler')"


def test_bearer_auth_mints_caches_and_renews_hs256_tokens() -> None:
    now = [1_767_600_000.0]
    auth = BearerAuth(
        RmfHttpTarget(base_url="http://rmf", jwt_secret=SECRET, username="sched"), clock=lambda: now[0]
    )

    first = auth.header()
    assert first is not None and first.startswith("Bearer ")
    claims = jwt.decode(
        first.removeprefix("Bearer "),
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "preferred_username": "sched",
        "iat": 1_767_600_000,
        "exp": 1_767_600_600,
    }
    now[0] += 539
    assert auth.header() == first  # 61 s left: still good
    now[0] += 2
    renewed = auth.header()
    assert renewed != first
    assert (
        jwt.decode(renewed.removeprefix("Bearer "), options={"verify_signature": False})["iat"]
        == 1_767_600_541
    )

    assert BearerAuth(RmfHttpTarget(base_url="http://rmf", token="tok")).headers() == {
        "Authorization": "Bearer tok"
    }
    assert BearerAuth(RmfHttpTarget(base_url="http://rmf")).headers() == {}


def test_answers_are_read_and_bounded() -> None:
    ok = {"success": True, "state": {"booking": {"id": "clean.dispatch-9"}}}
    assert read_answer(ok) == Delivery(Outcome.SUCCEEDED, fleet_task_id="clean.dispatch-9", response=ok)
    no_id = read_answer({"success": True, "state": {}})
    assert (no_id.outcome, no_id.ambiguous) == (Outcome.UNKNOWN, True)
    assert (read_answer([1]).outcome, read_answer({"state": {}}).outcome) == (
        Outcome.UNKNOWN,
        Outcome.UNKNOWN,
    )
    refused = read_answer(
        {"success": False, "errors": [{"code": 1, "category": "c", "detail": "no robot"}, {}]}
    )
    assert (refused.outcome, refused.error, refused.ambiguous) == (
        Outcome.REJECTED,
        "no robot; code None",
        False,
    )

    big = {"state": "x" * RESPONSE_LIMIT}
    excerpt = bounded(big)
    assert isinstance(excerpt, str) and excerpt.startswith('{"state":"xxx')
    assert len(excerpt) < EXCERPT_LIMIT + 40 and excerpt.endswith(f"({RESPONSE_LIMIT + 12} bytes in all)")
    assert bounded({"a": 1}) == {"a": 1} and bounded(b"text") == "text" and bounded(None) is None


async def test_each_rmf_target_kind_builds_its_transport(http: aiohttp.ClientSession) -> None:
    kinds = Registry(build_settings({}, environ={})).target_kinds
    context = TransportContext(http=http, allowlist=Allowlist(DEFAULT_ALLOWLIST))
    http_transport = kinds["rmf_http"].transport(RmfHttpTarget(base_url="http://rmf"), context)
    ws_transport = kinds["rmf_ws"].transport(RmfWsTarget(url="ws://rmf/ws"), context)

    assert isinstance(http_transport, RmfHttpTransport) and http_transport.supports_lookup
    assert isinstance(ws_transport, RmfWsTransport) and not ws_transport.supports_lookup
    await ws_transport.aclose()


@contextlib.asynccontextmanager
async def answering(*answers: web.Response) -> AsyncIterator[str]:
    """A real HTTP server on loopback that gives these answers in turn; yields its URL."""
    queue = iter(answers)

    async def answer(request: web.Request) -> web.Response:
        return next(queue)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_200_that_is_not_json_or_lacks_the_booking_id_is_unknown(http: aiohttp.ClientSession) -> None:
    """No fake-fleet behaviour answers like this, so a server of these two answers stands in."""
    answers = web.Response(text="<html>ok</html>"), web.json_response({"success": True})
    async with answering(*answers) as url:
        transport = over_http(http, url)
        not_json, no_id = await transport.submit(dispatch()), await transport.submit(dispatch())

    assert (not_json.outcome, not_json.ambiguous, not_json.response) == (
        Outcome.UNKNOWN,
        True,
        "<html>ok</html>",
    )
    assert (no_id.outcome, no_id.ambiguous) == (Outcome.UNKNOWN, True)
    assert "booking.id" in (no_id.error or "")


# --- HTTP ------------------------------------------------------------------------------


async def test_a_dispatch_succeeds_with_the_booking_id(
    fleet: FakeFleetHandle, transport: RmfHttpTransport
) -> None:
    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.fleet_task_id, delivery.ambiguous) == (
        Outcome.SUCCEEDED,
        "clean.dispatch-1",
        False,
    )
    assert delivery.error is None and delivery.response["state"]["booking"]["id"] == "clean.dispatch-1"
    (received,) = fleet.recorder.records
    assert (received.route, received.body, received.user) == ("POST /tasks/dispatch_task", dispatch(), None)


async def test_a_robot_task_goes_to_the_robot_task_route(
    fleet: FakeFleetHandle, transport: RmfHttpTransport
) -> None:
    delivery = await transport.submit(robot_task())

    assert (delivery.outcome, delivery.fleet_task_id) == (Outcome.SUCCEEDED, "clean.direct-1")
    assert delivery.response["state"]["assigned_to"] == {"group": "tinyRobot", "name": "tinyRobot1"}
    assert [r.route for r in fleet.recorder.records] == ["POST /tasks/robot_task"]


async def test_a_message_that_is_no_task_submission_is_not_sent(
    fleet: FakeFleetHandle, transport: RmfHttpTransport
) -> None:
    delivery = await transport.submit({"type": "cancel_task_request", "task_id": "x"})

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.FAILED, False)
    assert fleet.recorder.records == []


@pytest.mark.parametrize(
    ("behaviour", "message", "reason"),
    [
        ({"mode": "reject", "count": 1}, dispatch(), "the fake fleet rejects this task (reject)"),
        (None, dispatch(description={"zone": 7}), "request.description.zone: "),
    ],
    ids=["reject", "invalid"],
)
async def test_a_400_with_errors_is_rejected_with_their_details(
    fleet: FakeFleetHandle,
    transport: RmfHttpTransport,
    behaviour: dict[str, Any] | None,
    message: dict[str, Any],
    reason: str,
) -> None:
    if behaviour:
        fleet.behave(behaviour)

    delivery = await transport.submit(message)

    assert (delivery.outcome, delivery.ambiguous, delivery.fleet_task_id) == (Outcome.REJECTED, False, None)
    assert delivery.error is not None and delivery.error.startswith(reason)
    assert delivery.response["success"] is False


@pytest.mark.parametrize("accepted", [False, True])
async def test_a_500_is_failed_and_ambiguous_and_find_resolves_it(
    fleet: FakeFleetHandle, transport: RmfHttpTransport, accepted: bool
) -> None:
    fleet.behave({"mode": "fail", "count": 1, "accepted": accepted})

    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.FAILED, True)
    assert delivery.error == "HTTP 500 Internal Server Error"
    assert delivery.response == "Internal Server Error"
    assert await transport.find(label("r1@2026-01-05T07:00:00Z")) == (
        "clean.dispatch-1" if accepted else None
    )


async def test_a_read_timeout_after_sending_is_a_timeout_and_ambiguous(
    fleet: FakeFleetHandle, http: aiohttp.ClientSession
) -> None:
    fleet.behave({"mode": "delay", "seconds": 30, "count": 1})
    transport = over_http(http, fleet.url, timeout_s=0.2)

    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.TIMEOUT, True)
    assert delivery.error == "no answer within 0.2 s"
    assert await transport.find(label("r1@2026-01-05T07:00:00Z")) == fleet.recorder.records[0].task_id


async def test_requests_beyond_max_connections_wait_their_turn_outside_the_timeout(
    fleet: FakeFleetHandle, http: aiohttp.ClientSession
) -> None:
    fleet.behave({"mode": "delay", "seconds": 0.3, "count": 3})
    transport = over_http(http, fleet.url, timeout_s=0.5, max_connections=1)

    deliveries = await asyncio.gather(
        *(transport.submit(dispatch(f"r1@2026-01-05T07:0{n}:00Z")) for n in range(3))
    )

    # The third waited 0.6 s for its turn, longer than its timeout, and still succeeded.
    assert [d.outcome for d in deliveries] == [Outcome.SUCCEEDED] * 3
    arrivals = [record.time for record in fleet.recorder.records]
    assert all(later - earlier >= 0.29 for earlier, later in itertools.pairwise(arrivals))


@pytest.mark.parametrize(("mode", "kept"), [("drop", True), ("down", False)])
async def test_a_connection_cut_after_sending_is_unknown_and_ambiguous(
    fleet: FakeFleetHandle, transport: RmfHttpTransport, mode: str, kept: bool
) -> None:
    fleet.behave({"mode": mode, "count": 1})

    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.UNKNOWN, True)
    assert delivery.error is not None and delivery.error.startswith("the answer was lost: ")
    found = await transport.find(label("r1@2026-01-05T07:00:00Z"))
    assert found == ("clean.dispatch-1" if kept else None)
    again = await transport.submit(dispatch("r1@2026-01-05T08:00:00Z"))
    assert again.outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize("host", ["127.0.0.1", "does-not-exist.invalid"], ids=["refused", "dns"])
async def test_a_fleet_that_cannot_be_reached_is_failed_and_not_ambiguous(
    http: aiohttp.ClientSession, host: str
) -> None:
    transport = over_http(http, f"http://{host}:{free_port()}", timeout_s=2)

    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.FAILED, False)
    assert delivery.error is not None and delivery.error.startswith("cannot reach the fleet: ClientConnector")
    with pytest.raises(LookupFailed, match="cannot ask the fleet"):
        await transport.find(label("x"))


async def test_another_4xx_is_failed_and_not_ambiguous(
    fleet: FakeFleetHandle, http: aiohttp.ClientSession
) -> None:
    transport = over_http(http, fleet.url + "/wrong-prefix")

    delivery = await transport.submit(dispatch())

    assert (delivery.outcome, delivery.ambiguous, delivery.error) == (
        Outcome.FAILED,
        False,
        "HTTP 404 Not Found",
    )
    with pytest.raises(LookupFailed, match="HTTP 404"):
        await transport.find(label("x"))


async def test_find_returns_the_task_carrying_the_label(
    fleet: FakeFleetHandle, transport: RmfHttpTransport
) -> None:
    assert await transport.find(label("a")) is None

    first = await transport.submit(dispatch("a"))
    second = await transport.submit(dispatch("b"))

    assert await transport.find(label("a")) == first.fleet_task_id == "clean.dispatch-1"
    assert await transport.find(label("b")) == second.fleet_task_id == "clean.dispatch-2"
    assert await transport.find("task_scheduler.rule=r1") == "clean.dispatch-1"  # the oldest
    assert await transport.find(label("c")) is None
    queries = [r.labels for r in fleet.recorder.records if r.route == "GET /tasks"]
    assert queries[0] == [label("a")]


async def test_a_minted_jwt_is_accepted(jwt_fleet: FakeFleetHandle, http: aiohttp.ClientSession) -> None:
    transport = over_http(http, jwt_fleet.url, jwt_secret=SECRET, username="night-shift")

    delivery = await transport.submit(dispatch())

    assert delivery.outcome is Outcome.SUCCEEDED
    assert await transport.find(label("r1@2026-01-05T07:00:00Z")) == delivery.fleet_task_id
    assert [r.user for r in jwt_fleet.recorder.records] == ["night-shift", "night-shift"]


async def test_a_wrong_secret_is_refused_with_401_and_nothing_secret_is_logged(
    jwt_fleet: FakeFleetHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    transport = over_http(http, jwt_fleet.url, jwt_secret=SECRET[::-1])

    with caplog.at_level(logging.DEBUG):
        delivery = await transport.submit(dispatch())
        with pytest.raises(LookupFailed, match="401"):
            await transport.find(label("x"))

    assert (delivery.outcome, delivery.ambiguous) == (Outcome.FAILED, False)
    assert delivery.error is not None and delivery.error.startswith("HTTP 401 Unauthorized: invalid token")
    assert jwt_fleet.recorder.accepted() == []
    assert SECRET[::-1] not in caplog.text and "Bearer" not in caplog.text and "401" in caplog.text
    assert SECRET[::-1] not in repr(transport)


async def test_a_configured_token_is_passed_through(
    jwt_fleet: FakeFleetHandle, http: aiohttp.ClientSession
) -> None:
    transport = over_http(http, jwt_fleet.url, token=jwt_fleet.token("alice"))

    delivery = await transport.submit(dispatch())

    assert delivery.outcome is Outcome.SUCCEEDED
    assert [r.user for r in jwt_fleet.recorder.records] == ["alice"]


# --- websocket bridge ------------------------------------------------------------------


async def test_ws_a_dispatch_and_a_robot_task_succeed(fleet: FakeFleetHandle, ws: RmfWsTransport) -> None:
    dispatched = await ws.submit(dispatch("a"))
    direct = await ws.submit(robot_task("b"))

    assert (dispatched.outcome, dispatched.fleet_task_id) == (Outcome.SUCCEEDED, "clean.dispatch-1")
    assert (direct.outcome, direct.fleet_task_id) == (Outcome.SUCCEEDED, "clean.direct-2")
    first, second = fleet.recorder.records
    assert (first.transport, first.body, second.body) == ("ws", dispatch("a"), robot_task("b"))
    assert first.request_id and second.request_id and len({first.request_id, second.request_id}) == 2
    assert len(first.request_id) == 32 and int(first.request_id, 16) >= 0


async def test_ws_the_bridge_token_is_never_logged_at_any_level(
    jwt_fleet: FakeFleetHandle, caplog: pytest.LogCaptureFixture
) -> None:
    token = jwt_fleet.token("alice")
    transport = RmfWsTransport(RmfWsTarget(url=jwt_fleet.ws_url, token=token, timeout_s=5))
    try:
        with caplog.at_level(logging.DEBUG):
            delivery = await transport.submit(dispatch("a"))
    finally:
        await transport.aclose()
    assert delivery.outcome is Outcome.SUCCEEDED
    # The fake fleet's server logs in this process too (uvicorn.*): only ours are checked.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("uvicorn"))
    assert "Authorization: [redacted]" in ours  # the handshake's headers were logged
    assert token not in ours and token.split(".")[2] not in ours


async def test_ws_concurrent_submits_are_matched_by_request_id(
    fleet: FakeFleetHandle, ws: RmfWsTransport
) -> None:
    await ws.submit(dispatch("warm-up"))  # one connection, opened before the race
    fleet.behave({"mode": "delay", "seconds": 0.5, "count": 1})

    slow = asyncio.create_task(ws.submit(dispatch("slow")))
    await fleet.recorder.wait_for(lambda r: len(r.records) == 2)
    quick = await ws.submit(dispatch("quick"))
    assert not slow.done()  # the quick reply overtook the slow one
    slow_delivery = await slow

    tasks = {r.labels[0]: r.task_id for r in fleet.recorder.records}
    assert quick.fleet_task_id == tasks[label("quick")]
    assert slow_delivery.fleet_task_id == tasks[label("slow")]
    assert slow_delivery.response["state"]["booking"]["labels"][0] == label("slow")


async def test_ws_a_reject_is_rejected_and_a_fail_is_failed_and_ambiguous(
    fleet: FakeFleetHandle, ws: RmfWsTransport
) -> None:
    fleet.behave({"mode": "reject", "count": 1}, {"mode": "fail", "count": 1, "accepted": True})

    rejected = await ws.submit(dispatch())
    failed = await ws.submit(dispatch())

    assert (rejected.outcome, rejected.ambiguous) == (Outcome.REJECTED, False)
    assert rejected.error == "the fake fleet rejects this task (reject)"
    assert (failed.outcome, failed.ambiguous) == (Outcome.FAILED, True)


async def test_ws_no_reply_in_time_is_a_timeout_and_the_late_reply_is_ignored(fleet: FakeFleetHandle) -> None:
    fleet.behave({"mode": "delay", "seconds": 0.4, "count": 1})
    transport = RmfWsTransport(RmfWsTarget(url=fleet.ws_url, timeout_s=0.2))
    try:
        with LogWaiter("task_scheduler.transports.rmf_ws", "duplicate, late or unknown") as late_reply:
            late = await transport.submit(dispatch("late"))
            await asyncio.wait_for(late_reply.wait(), 5)

        assert (late.outcome, late.ambiguous) == (Outcome.TIMEOUT, True)
        assert late.error == "no reply within 0.2 s"
        after = await transport.submit(dispatch("after"))  # the same connection serves on
        assert after.outcome is Outcome.SUCCEEDED
    finally:
        await transport.aclose()


async def test_ws_a_dropped_connection_is_unknown_then_reopened(
    fleet: FakeFleetHandle, ws: RmfWsTransport
) -> None:
    fleet.behave({"mode": "drop", "count": 1})

    lost = await ws.submit(dispatch("lost"))
    later = await ws.submit(dispatch("later"))

    assert (lost.outcome, lost.ambiguous) == (Outcome.UNKNOWN, True)
    assert lost.error is not None and lost.error.startswith("no reply: the connection was lost")
    assert (later.outcome, later.fleet_task_id) == (Outcome.SUCCEEDED, "clean.dispatch-2")
    assert fleet.recorder.counts(TASK_LABEL) == {"lost": 1, "later": 1}


async def test_ws_a_fleet_that_cannot_be_reached_is_failed_then_retried_after_a_capped_backoff() -> None:
    port = free_port()
    config = RmfWsTarget(url=f"ws://127.0.0.1:{port}/ws", timeout_s=2, reconnect_max_s=0.05)
    slow_to_retry = RmfWsTransport(config.model_copy(update={"reconnect_max_s": 60}), reconnect_min_s=60)
    transport = RmfWsTransport(config, reconnect_min_s=60)  # capped at 0.05 s
    try:
        refused = await transport.submit(dispatch())
        assert (refused.outcome, refused.ambiguous) == (Outcome.FAILED, False)
        assert refused.error is not None and refused.error.startswith("cannot connect to the bridge: ")

        assert (await slow_to_retry.submit(dispatch())).outcome is Outcome.FAILED
        waiting = await slow_to_retry.submit(dispatch())
        assert (waiting.outcome, waiting.ambiguous) == (Outcome.FAILED, False)
        assert "next attempt in" in (waiting.error or "")

        async with running_fake_fleet(port=port) as fleet:
            delivery = await transport.submit(dispatch())
            assert delivery.outcome is Outcome.SUCCEEDED
            assert len(fleet.recorder.accepted()) == 1
    finally:
        await transport.aclose()
        await slow_to_retry.aclose()


async def test_ws_the_handshake_carries_the_bearer_token(jwt_fleet: FakeFleetHandle) -> None:
    good = RmfWsTransport(RmfWsTarget(url=jwt_fleet.ws_url, jwt_secret=SECRET, username="bridge-user"))
    bad = RmfWsTransport(RmfWsTarget(url=jwt_fleet.ws_url, jwt_secret=SECRET[::-1]))
    try:
        accepted = await good.submit(dispatch())
        refused = await bad.submit(dispatch())
    finally:
        await good.aclose()
        await bad.aclose()

    assert accepted.outcome is Outcome.SUCCEEDED
    assert (refused.outcome, refused.ambiguous) == (Outcome.FAILED, False)
    assert refused.error is not None and "handshake refused: HTTP 401" in refused.error
    assert [(r.route, r.status, r.user) for r in jwt_fleet.recorder.records] == [
        ("WS /ws", 200, "bridge-user"),
        ("WS /ws", 401, None),
    ]


async def test_ws_cannot_be_queried(ws: RmfWsTransport) -> None:
    with pytest.raises(LookupFailed, match="the websocket bridge cannot be queried"):
        await ws.find(label("x"))


async def test_ws_aclose_ends_pending_submits_and_later_ones(fleet: FakeFleetHandle) -> None:
    fleet.behave({"mode": "delay", "seconds": 30, "count": 1})
    transport = RmfWsTransport(RmfWsTarget(url=fleet.ws_url))
    pending = asyncio.create_task(transport.submit(dispatch()))
    await fleet.recorder.wait_for(lambda r: len(r.records) == 1)

    await transport.aclose()

    delivery = await asyncio.wait_for(pending, 5)
    assert (delivery.outcome, delivery.ambiguous) == (Outcome.UNKNOWN, True)
    assert delivery.error == "no reply: the transport was closed"
    after = await transport.submit(dispatch())
    assert (after.outcome, after.ambiguous, after.error) == (
        Outcome.FAILED,
        False,
        "cannot connect to the bridge: the transport is closed",
    )


async def test_ws_duplicate_unknown_and_unreadable_replies_are_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bridge that misbehaves in ways the fake fleet does not: a raw websockets server."""
    answer = {"success": True, "state": {"booking": {"id": "t-1"}}}

    async def bridge(connection: ServerConnection) -> None:
        async for data in connection:
            request_id = json.loads(data)["request_id"]
            await connection.send("not json")
            await connection.send(json.dumps({"request_id": "someone-else", "json_msg": json.dumps(answer)}))
            for _ in range(2):
                await connection.send(json.dumps({"request_id": request_id, "json_msg": json.dumps(answer)}))

    async with serve(bridge, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        transport = RmfWsTransport(RmfWsTarget(url=f"ws://127.0.0.1:{port}"))
        try:
            with caplog.at_level(logging.DEBUG, logger="task_scheduler.transports.rmf_ws"):
                first = await transport.submit(dispatch())
                second = await transport.submit(dispatch())
        finally:
            await transport.aclose()

    assert first.fleet_task_id == second.fleet_task_id == "t-1"
    assert "ignoring an unreadable message" in caplog.text
    assert "ignoring a reply for request 'someone-else'" in caplog.text
    assert caplog.text.count("duplicate, late or unknown") >= 3


async def test_ws_connects_to_the_address_the_allowlist_approved_and_names_the_host() -> None:
    """A name trusted only by its addresses is resolved once and dialled by address; the
    handshake still names the host. A refused host is rejected with no connection made."""
    answer = {"success": True, "state": {"booking": {"id": "t-1"}}}
    handshakes: list[tuple[str | None, str]] = []

    async def bridge(connection: ServerConnection) -> None:
        handshakes.append((connection.request.headers.get("Host"), connection.remote_address[0]))
        async for data in connection:
            reply = {"request_id": json.loads(data)["request_id"], "json_msg": json.dumps(answer)}
            await connection.send(json.dumps(reply))

    async with serve(bridge, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        deliveries = {}
        for allowlist, url in (
            (["127.0.0.0/8"], f"ws://LocalHost.:{port}/ws"),
            (["127.0.0.1"], f"ws://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/ws"),
            (["10.0.0.0/8"], f"ws://localhost:{port}/ws"),
            (["127.0.0.1"], f"ws://0x7f.2:{port}/ws"),
        ):
            transport = RmfWsTransport(RmfWsTarget(url=url, timeout_s=5), Allowlist(allowlist))
            try:
                deliveries[url] = await transport.submit(dispatch())
            finally:
                await transport.aclose()

    outcomes = [(d.outcome, d.reached) for d in deliveries.values()]
    assert outcomes == [(Outcome.SUCCEEDED, True)] * 2 + [(Outcome.REJECTED, True)] * 2, deliveries
    assert handshakes == [(f"localhost:{port}", "127.0.0.1"), (f"127.0.0.1:{port}", "127.0.0.1")]
    refusals = [d.error for d in deliveries.values()][2:]
    assert refusals == [
        "localhost resolves to no address in outbound_allowlist",
        "0x7f.2 (127.0.0.2) is not in outbound_allowlist",
    ]
