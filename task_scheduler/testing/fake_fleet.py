"""A fake Open-RMF fleet manager: a real server that end-to-end tests and benchmarks dispatch to.

It serves the rmf-web api-server routes the scheduler uses, holds every task request to
Open-RMF's own JSON schemas, and records everything it receives, so a test can assert
what reached the fleet, when, and how many times (the exactly-once check). Run it with
``python -m task_scheduler.testing.fake_fleet --host 127.0.0.1 --port 8011
[--jwt-secret S --jwt-audience A --jwt-issuer I] [--extra-categories JSON]``, or in a test
with :func:`running_fake_fleet` (same event loop) or :func:`start_fake_fleet_process`.

Fleet routes
    ``POST /tasks/dispatch_task``: a ``dispatch_task_request``. 200 with a
    ``dispatch_task_response`` whose ``state.booking.id`` is new (``<category>.dispatch-<n>``);
    400 with ``{"success": false, "errors": [...]}``, one error per problem, its
    ``detail`` naming the place (``request.description.zone: ...``).
    ``POST /tasks/robot_task``: a ``robot_task_request``, answered the same way (ids
    ``<category>.direct-<n>``, the state ``assigned_to`` the named robot).
    ``GET /tasks?label=key=value``: the states of the tasks the fleet kept whose request
    labels include every ``label`` given (a bare ``key`` means ``key=``), oldest first.
    ``WS /ws``: RMF's request/response bridge. Each message ``{"request_id": "...",
    "json_msg": "<a dispatch_task_request or robot_task_request as JSON text>"}`` is
    answered ``{"request_id": <same>, "json_msg": "<the response as JSON text>"}``;
    messages are handled concurrently. A message that cannot be read is answered with
    an error if it has a ``request_id``, else only recorded.

    With ``--jwt-secret`` each needs ``Authorization: Bearer <HS256 JWT>`` whose ``aud``
    and ``iss`` match and which has ``preferred_username``; otherwise 401 (for ``/ws``,
    the handshake is denied with 401).

Control routes (no token needed)
    ``GET /_fake/received``: every record, oldest first. ``DELETE /_fake/received``:
    forget them all, and so the tasks ``GET /tasks`` lists (task ids keep counting).
    ``GET /_fake/counts?label_key=K``: ``{value: n}``, the tasks the fleet kept per value
    of label ``K``. ``GET /_fake/behaviour``: the plan still to apply.
    ``PUT /_fake/behaviour``: replace the plan.

Behaviour
    A plan is one step or a list of steps, applied in order to the task submissions that
    follow (``POST`` to the two task routes, and bridge messages; ``GET /tasks`` always
    answers)::

        {"mode": "delay", "seconds": 3, "count": 1}
        [{"mode": "down", "count": 2}, {"mode": "drop", "count": 1}]

    ``mode`` is one of:

    - ``accept`` (the default): answer 200, or 400 if the request is invalid;
    - ``reject``: answer 400 with errors even for a valid request, as the api-server does
      for a task no fleet takes;
    - ``fail``: answer HTTP 500 (on the bridge: an error with code 500); the fleet keeps
      the task only with ``"accepted": true`` (it took the task, then failed to say so);
    - ``delay``: handle as ``accept`` at arrival (a valid task is recorded and kept), but
      answer only after ``seconds`` (sooner if the client leaves or the fleet stops), so
      a client timeout is an ambiguous outcome;
    - ``drop``: handle as ``accept`` at arrival, then abort the connection unanswered;
    - ``down``: abort the connection at once; nothing is recorded or kept.

    ``count`` (optional, >= 1) applies a step to that many submissions, then moves on;
    a step without it lasts until the plan is replaced, so only the last step may omit
    it. After the last counted step the fleet accepts again; ``{"mode": "accept"}`` or
    ``[]`` restores the default at once. A bad plan gets 422 with the reason.

Records (``GET /_fake/received``; :class:`Received` in process)::

    {"seq": 1, "time": 1767614400.25, "transport": "http", "route": "POST /tasks/dispatch_task",
     "request_id": null, "user": "scheduler", "body": {...}, "labels": ["task_scheduler.task=..."],
     "mode": "accept", "problems": [{"path": ["request", "category"], "message": "..."}],
     "status": 200, "task_id": "clean.dispatch-1", "state": {...}}

``time`` is ``time.time()`` at arrival. ``status`` is the answer given (or due, while a
delay runs); null when none is: a dropped request, or an unreadable bridge message without
``request_id``. ``task_id`` and ``state`` are set when the fleet kept the task. Problem
paths are rooted at ``body``, which for a bridge message is the request inside
``json_msg`` when that could be read. Requests refused with 401 are recorded too;
``GET /tasks`` queries are recorded with the labels asked for.

Nothing is created at import: :class:`FakeFleet` builds its app, and ``drop`` and
``down`` need it served by this module's helpers (they cut the connection through
uvicorn's server state).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from task_scheduler.domain.rmf_schema import (
    Problem,
    RmfValidationError,
    check_extra_categories,
    validate_message,
    validate_task_request,
)
from task_scheduler.testing.service_process import die_with_parent

__all__ = [
    "WS_PATH",
    "FakeFleet",
    "FakeFleetHandle",
    "JwtAuth",
    "Received",
    "Recorder",
    "Step",
    "main",
    "parse_plan",
    "running_fake_fleet",
    "start_fake_fleet_process",
]

logger = logging.getLogger(__name__)

WS_PATH: Final = "/ws"
MODES: Final = ("accept", "reject", "fail", "delay", "drop", "down")
SUBMISSIONS: Final = {
    "dispatch_task_request": "/tasks/dispatch_task",
    "robot_task_request": "/tasks/robot_task",
}
"""The task submissions the fleet takes: message type -> HTTP route."""

_INVALID: Final = (5, "Invalid request format")


# --- behaviour -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a behaviour plan; ``count`` None means until the plan is replaced."""

    mode: str = "accept"
    count: int | None = None
    seconds: float = 0.0
    accepted: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode}
        if self.count is not None:
            data["count"] = self.count
        if self.mode == "delay":
            data["seconds"] = self.seconds
        if self.mode == "fail":
            data["accepted"] = self.accepted
        return data


def parse_plan(data: Any) -> list[Step]:
    """Read a plan (one step object or a list of them); ``ValueError`` says what is wrong."""
    items = data if isinstance(data, list) else [data]
    steps: list[Step] = []
    for index, item in enumerate(items):
        where = f"step {index}" if isinstance(data, list) else "behaviour"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object")
        unknown = sorted(set(item) - {"mode", "count", "seconds", "accepted"})
        mode, count = item.get("mode"), item.get("count")
        seconds, accepted = item.get("seconds", 0), item.get("accepted", False)
        if unknown:
            raise ValueError(f"{where}: unknown field(s): {', '.join(unknown)}")
        if mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {', '.join(MODES)}")
        if count is not None and (type(count) is not int or count < 1):
            raise ValueError(f"{where}: count must be an integer >= 1")
        if count is None and index < len(items) - 1:
            raise ValueError(f"{where}: only the last step may omit count")
        if mode == "delay" and (type(seconds) not in (int, float) or seconds < 0 or "seconds" not in item):
            raise ValueError(f"{where}: delay needs seconds, a number >= 0")
        if mode != "delay" and "seconds" in item:
            raise ValueError(f"{where}: seconds applies to delay only")
        if "accepted" in item and (mode != "fail" or type(accepted) is not bool):
            raise ValueError(f"{where}: accepted is a boolean, for fail only")
        steps.append(Step(mode, count, float(seconds), accepted))
    return steps


class Plan:
    """The steps still to apply; :meth:`next` hands out one per task submission."""

    def __init__(self) -> None:
        self._steps: list[Step] = []

    def replace(self, steps: Sequence[Step]) -> None:
        self._steps = list(steps)

    def next(self) -> Step:
        if not self._steps:
            return Step()
        step = self._steps[0]
        if step.count == 1:
            self._steps.pop(0)
        elif step.count is not None:
            self._steps[0] = dataclasses.replace(step, count=step.count - 1)
        return step

    def to_json(self) -> list[dict[str, Any]]:
        return [step.to_json() for step in self._steps]


# --- records ---------------------------------------------------------------------------


def _label_pair(label: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")``; a bare ``"key"`` means ``("key", "")``."""
    key, _, value = label.partition("=")
    return key, value


@dataclasses.dataclass
class Received:
    """What arrived and what the fleet made of it (see the module docstring)."""

    seq: int
    time: float
    transport: str
    route: str
    body: Any = None
    labels: list[str] = dataclasses.field(default_factory=list)
    request_id: str | None = None
    user: str | None = None
    mode: str | None = None
    problems: list[Problem] = dataclasses.field(default_factory=list)
    status: int | None = None
    task_id: str | None = None
    state: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        """Whether the fleet kept a task for this request."""
        return self.task_id is not None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["problems"] = [{"path": list(path), "message": message} for path, message in self.problems]
        return data


class Recorder:
    """Every request the fleet received, oldest first, and what follows from them."""

    def __init__(self) -> None:
        self.records: list[Received] = []
        self._seq = itertools.count(1)
        self._changed = asyncio.Event()

    def add(self, **fields: Any) -> Received:
        received = Received(seq=next(self._seq), **fields)
        self.records.append(received)
        self._notify()
        return received

    def clear(self) -> None:
        self.records.clear()
        self._notify()

    def _notify(self) -> None:
        """Wake every :meth:`wait_for`; each then waits on a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()

    def accepted(self) -> list[Received]:
        return [received for received in self.records if received.accepted]

    def counts(self, label_key: str) -> dict[str, int]:
        """How many kept tasks carry each value of label ``label_key``."""
        counts: dict[str, int] = {}
        for received in self.accepted():
            for value in {v for k, v in map(_label_pair, received.labels) if k == label_key}:
                counts[value] = counts.get(value, 0) + 1
        return counts

    def tasks(self, labels: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The states of kept tasks whose labels include every one of ``labels``."""
        wanted = [_label_pair(label) for label in labels]
        return [
            received.state
            for received in self.accepted()
            if received.state is not None and all(p in map(_label_pair, received.labels) for p in wanted)
        ]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate(self)`` holds; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not met within {timeout} s; {len(self.records)} request(s) received")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


# --- the fleet -------------------------------------------------------------------------


class AuthError(ValueError):
    """Why a request's credentials are refused."""


@dataclasses.dataclass(frozen=True)
class JwtAuth:
    """HS256 bearer tokens, as the api-server checks them: audience, issuer, a username."""

    secret: str
    audience: str
    issuer: str

    def user(self, authorization: str | None) -> str:
        """The ``preferred_username`` of a valid ``Bearer`` header; ``AuthError`` otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("missing bearer token")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["aud", "iss", "preferred_username"]},
            )
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token: {error}") from error
        return str(claims["preferred_username"])

    def token(self, username: str = "scheduler", lifetime_s: float = 3600) -> str:
        """A token this fleet accepts, for tests."""
        now = int(time.time())
        claims = {
            "aud": self.audience,
            "iss": self.issuer,
            "preferred_username": username,
            "iat": now,
            "exp": now + int(lifetime_s),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")


def _parse_json(text: bytes | str) -> tuple[Any, list[Problem]]:
    """The parsed document, or the text itself and why it is not JSON."""
    try:
        return json.loads(text), []
    except ValueError as error:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return raw, [((), f"not JSON: {error}")]


def _where(path: Sequence[str | int]) -> str:
    """``("request", "phases", 0)`` -> ``request.phases[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(message)"


def _tidy(problems: list[Problem]) -> list[Problem]:
    """Drop repeats; order by path (indexes before keys), then message."""
    return sorted(dict.fromkeys(problems), key=lambda p: (tuple((isinstance(k, str), k) for k in p[0]), p[1]))


def _error(code: int, category: str, detail: str) -> dict[str, Any]:
    return {"code": code, "category": category, "detail": detail}


def _failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"success": False, "errors": errors}


def _problem_errors(problems: list[Problem]) -> list[dict[str, Any]]:
    return [_error(*_INVALID, f"{_where(path)}: {message}") for path, message in problems]


def _request_labels(body: Any) -> list[str]:
    request = body.get("request") if isinstance(body, dict) else None
    labels = request.get("labels") if isinstance(request, dict) else None
    return [label for label in labels if isinstance(label, str)] if isinstance(labels, list) else []


class FakeFleet:
    """The fleet's state (records, plan, task ids) and the app that serves it."""

    def __init__(
        self,
        *,
        auth: JwtAuth | None = None,
        extra_categories: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.auth = auth
        self.extra_categories = dict(extra_categories or {})
        check_extra_categories(self.extra_categories)
        self.recorder = Recorder()
        self.plan = Plan()
        self._task_numbers = itertools.count(1)
        self._closing = asyncio.Event()
        self._server: uvicorn.Server | None = None

    def behave(self, *steps: Mapping[str, Any]) -> None:
        """Replace the plan with these steps, in the JSON shape of ``PUT /_fake/behaviour``."""
        self.plan.replace(parse_plan([dict(step) for step in steps]))

    def attach(self, server: uvicorn.Server) -> None:
        """Serve through ``server``: ``drop`` and ``down`` cut connections in its state."""
        self._server = server

    def close(self) -> None:
        """Cut running delays short, so the server can stop without waiting them out."""
        self._closing.set()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                *(
                    Route(path, functools.partial(self._http_submit, kind), methods=["POST"])
                    for kind, path in SUBMISSIONS.items()
                ),
                Route("/tasks", self._http_query, methods=["GET"]),
                WebSocketRoute(WS_PATH, self._ws_bridge),
                Route("/_fake/received", self._received, methods=["GET", "DELETE"]),
                Route("/_fake/counts", self._counts, methods=["GET"]),
                Route("/_fake/behaviour", self._behaviour, methods=["GET", "PUT"]),
            ]
        )

    # The core: validate, decide, record.

    def _problems(self, kind: str, body: Any) -> list[Problem]:
        problems = list(validate_message(kind, body))
        if isinstance(body, dict):
            # robot_task_request's schema writes "constant" for "const": jsonschema ignores it.
            if kind == "robot_task_request" and "type" in body and body["type"] != kind:
                problems.append((("type",), f"{kind!r} was expected"))
            if isinstance(body.get("request"), dict):
                try:
                    validate_task_request(body["request"], self.extra_categories)
                except RmfValidationError as error:
                    problems += [(("request", *path), message) for path, message in error.problems]
        return _tidy(problems)

    def _new_state(self, kind: str, body: dict[str, Any], arrival: float) -> dict[str, Any]:
        request, now_ms, number = body["request"], int(arrival * 1000), next(self._task_numbers)
        direct = kind == "robot_task_request"
        booking = {
            "id": f"{request['category']}.{'direct' if direct else 'dispatch'}-{number}",
            "unix_millis_earliest_start_time": request.get("unix_millis_earliest_start_time", now_ms),
            "unix_millis_request_time": request.get("unix_millis_request_time", now_ms),
            **{key: request[key] for key in ("priority", "labels", "requester") if key in request},
        }
        state: dict[str, Any] = {
            "booking": booking,
            "category": request["category"],
            "status": "queued",
            "dispatch": {"status": "queued"},
        }
        if isinstance(request["description"], (dict, list, str)):
            state["detail"] = request["description"]
        if direct:
            state["assigned_to"] = {"group": body["fleet"], "name": body["robot"]}
            assignment = {"fleet_name": body["fleet"], "expected_robot_name": body["robot"]}
            state["dispatch"] = {"status": "dispatched", "assignment": assignment}
        return state

    def _take(
        self, kind: str, body: Any, step: Step, arrival: float, problems: list[Problem], **fields: Any
    ) -> tuple[int, dict[str, Any]]:
        """Validate a submission, decide its answer as ``step`` says, record it.

        ``problems`` found before (an unreadable body) stand in for the schema check.
        Returns the answer's status and message.
        """
        problems = problems or self._problems(kind, body)
        keeps = not problems and (step.mode in ("accept", "delay", "drop") or step.accepted)
        state = self._new_state(kind, body, arrival) if keeps else None
        if step.mode == "fail":
            status, answer = 500, _failure([_error(500, "Internal error", "the fake fleet failed (fail)")])
        elif step.mode == "reject":
            rejected = _error(1, "Rejected", "the fake fleet rejects this task (reject)")
            status, answer = 400, _failure([rejected, *_problem_errors(problems)])
        elif problems:
            status, answer = 400, _failure(_problem_errors(problems))
        else:
            status, answer = 200, {"success": True, "state": state}
        self.recorder.add(
            time=arrival,
            body=body,
            labels=_request_labels(body),
            mode=step.mode,
            problems=problems,
            status=None if step.mode == "drop" else status,
            task_id=state["booking"]["id"] if state else None,
            state=state,
            **fields,
        )
        return status, answer

    def _user(self, authorization: str | None) -> str | None:
        return None if self.auth is None else self.auth.user(authorization)

    def _abort(self, client: Sequence[Any] | None) -> None:
        """Cut a client's connection without a word, as a crashed fleet would."""
        if self._server is None:
            raise RuntimeError("drop and down need the fleet served by running_fake_fleet or main")
        for connection in list(self._server.server_state.connections):
            if client is not None and getattr(connection, "client", None) == tuple(client):
                connection.transport.abort()
                logger.info("fake fleet cut the connection from %s:%s", *client)
                return
        raise RuntimeError(f"no connection from {client} to cut")

    async def _pause(self, seconds: float, *also: Awaitable[Any]) -> None:
        """Wait ``seconds``, or less if the fleet closes or one of ``also`` finishes."""
        waiters = [asyncio.ensure_future(w) for w in (asyncio.sleep(seconds), self._closing.wait(), *also)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # HTTP routes.

    async def _http_submit(self, kind: str, request: Request) -> Response:
        arrival = time.time()
        fields: dict[str, Any] = {"transport": "http", "route": f"POST {SUBMISSIONS[kind]}"}
        body, problems = _parse_json(await request.body())
        try:
            fields["user"] = self._user(request.headers.get("authorization"))
        except AuthError as error:
            labels = _request_labels(body)
            self.recorder.add(
                time=arrival, body=body, labels=labels, problems=[((), str(error))], status=401, **fields
            )
            return JSONResponse({"detail": str(error)}, 401)
        step = self.plan.next()
        if step.mode == "down":
            return await self._cut(request)
        status, answer = self._take(kind, body, step, arrival, problems, **fields)
        if step.mode == "drop":
            return await self._cut(request)
        if step.mode == "delay":
            await self._pause(step.seconds, _disconnected(request))
        if status == 500:
            return PlainTextResponse("Internal Server Error", 500)
        return JSONResponse(answer, status)

    async def _cut(self, request: Request) -> Response:
        self._abort(request.client)
        await _disconnected(request)
        return Response()  # never sent: the client is gone

    async def _http_query(self, request: Request) -> Response:
        arrival, labels = time.time(), request.query_params.getlist("label")
        fields: dict[str, Any] = {
            "time": arrival,
            "transport": "http",
            "route": "GET /tasks",
            "labels": labels,
        }
        try:
            user = self._user(request.headers.get("authorization"))
        except AuthError as error:
            self.recorder.add(problems=[((), str(error))], status=401, **fields)
            return JSONResponse({"detail": str(error)}, 401)
        self.recorder.add(user=user, status=200, **fields)
        return JSONResponse(self.recorder.tasks(labels))

    async def _received(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.recorder.clear()
            return Response(status_code=204)
        return JSONResponse([received.to_json() for received in self.recorder.records])

    async def _counts(self, request: Request) -> Response:
        label_key = request.query_params.get("label_key")
        if not label_key:
            return JSONResponse({"detail": "label_key is required"}, 422)
        return JSONResponse(self.recorder.counts(label_key))

    async def _behaviour(self, request: Request) -> Response:
        if request.method == "PUT":
            data, problems = _parse_json(await request.body())
            try:
                if problems:
                    raise ValueError(problems[0][1])
                self.plan.replace(parse_plan(data))
            except ValueError as error:
                return JSONResponse({"detail": str(error)}, 422)
        return JSONResponse(self.plan.to_json())

    # The websocket bridge.

    async def _ws_bridge(self, websocket: WebSocket) -> None:
        try:
            user = self._user(websocket.headers.get("authorization"))
        except AuthError as error:
            fields: dict[str, Any] = {"transport": "ws", "route": f"WS {WS_PATH}", "status": 401}
            self.recorder.add(time=time.time(), problems=[((), str(error))], **fields)
            await websocket.send_denial_response(JSONResponse({"detail": str(error)}, 401))
            return
        await websocket.accept()
        sending = asyncio.Lock()

        async def reply(request_id: str, message: dict[str, Any]) -> None:
            envelope = {"request_id": request_id, "json_msg": json.dumps(message)}
            # A dropped connection makes a concurrent answer fail; the client is gone anyway.
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                async with sending:
                    await websocket.send_text(json.dumps(envelope))

        handlers: set[asyncio.Task[None]] = set()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
                handler = asyncio.create_task(self._ws_message(websocket.client, text, user, reply))
                handlers.add(handler)
                handler.add_done_callback(handlers.discard)
        finally:
            pending = list(handlers)
            for handler in pending:
                handler.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _ws_message(
        self,
        client: Sequence[Any] | None,
        text: str,
        user: str | None,
        reply: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        arrival = time.time()
        request_id, body, problems = _open_envelope(text)
        fields = {"transport": "ws", "route": f"WS {WS_PATH}", "user": user, "request_id": request_id}
        if problems or request_id is None:  # (no request_id is one of the problems)
            status = None if request_id is None else 400
            self.recorder.add(time=arrival, body=body, problems=problems, status=status, **fields)
            if request_id is not None:
                await reply(request_id, _failure(_problem_errors(problems)))
            return
        step = self.plan.next()
        if step.mode == "down":
            self._abort(client)
            return
        _, answer = self._take(body["type"], body, step, arrival, [], **fields)
        if step.mode == "drop":
            self._abort(client)
            return
        if step.mode == "delay":
            await self._pause(step.seconds)
        await reply(request_id, answer)


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (its request body already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _open_envelope(text: str) -> tuple[str | None, Any, list[Problem]]:
    """Read a bridge message: its ``request_id`` if any, the body to record, the problems.

    The body is the request inside ``json_msg`` once that is readable, else the envelope.
    """
    envelope, problems = _parse_json(text)
    if problems or not isinstance(envelope, dict):
        return None, envelope, problems or [((), "expected an object with request_id and json_msg")]
    request_id = envelope.get("request_id")
    if not isinstance(request_id, str):
        request_id = None
        problems.append((("request_id",), "expected a string"))
    json_msg = envelope.get("json_msg")
    if not isinstance(json_msg, str):
        return request_id, envelope, [*problems, (("json_msg",), "expected a request as JSON text")]
    request, unreadable = _parse_json(json_msg)
    if unreadable:
        return request_id, envelope, [*problems, *((("json_msg",), m) for _, m in unreadable)]
    if not isinstance(request, dict) or request.get("type") not in SUBMISSIONS:
        problems.append((("type",), f"expected one of: {', '.join(SUBMISSIONS)}"))
    return request_id, request, problems


# --- serving ---------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, port 0 meaning a free one.

    Made with ``IPPROTO_TCP`` rather than by ``socket.create_server`` (protocol 0): asyncio
    sets ``TCP_NODELAY`` only on connections that say TCP, and without it every answer
    waits some 40 ms for a delayed ACK.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _auth(secret: str | None, audience: str | None, issuer: str | None) -> JwtAuth | None:
    if secret is None:
        if audience is not None or issuer is not None:
            raise ValueError("a JWT audience or issuer needs a JWT secret")
        return None
    if audience is None or issuer is None:
        raise ValueError("a JWT secret needs both an audience and an issuer")
    return JwtAuth(secret, audience, issuer)


@dataclasses.dataclass(frozen=True)
class FakeFleetHandle:
    """A running fake fleet: where it listens, and the fleet itself for assertions."""

    fleet: FakeFleet
    host: str
    port: int

    @property
    def url(self) -> str:
        return _url("http", self.host, self.port)

    @property
    def ws_url(self) -> str:
        return _url("ws", self.host, self.port) + WS_PATH

    @property
    def recorder(self) -> Recorder:
        return self.fleet.recorder

    def behave(self, *steps: Mapping[str, Any]) -> None:
        self.fleet.behave(*steps)

    def token(self, username: str = "scheduler") -> str:
        """A bearer token the fleet accepts (it must have been started with a JWT secret)."""
        if self.fleet.auth is None:
            raise RuntimeError("this fake fleet checks no tokens")
        return self.fleet.auth.token(username)


class _FleetServer(uvicorn.Server):
    """uvicorn serving a fake fleet in the running event loop.

    It leaves signals to its host (a test process, or :func:`main`, which stops it on
    SIGINT and SIGTERM) and stops as soon as :meth:`stop` is called, delays cut short,
    rather than at its next tick (every 0.1 s).
    """

    def __init__(self, fleet: FakeFleet, **config: Any) -> None:
        super().__init__(uvicorn.Config(fleet.app(), lifespan="off", **config))
        self.fleet = fleet
        self._stopping = asyncio.Event()
        fleet.attach(self)

    def stop(self) -> None:
        self.fleet.close()
        self.should_exit = True
        self._stopping.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the Date and Server headers, once
        await self._stopping.wait()


@contextlib.asynccontextmanager
async def running_fake_fleet(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    jwt_secret: str | None = None,
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
    extra_categories: Mapping[str, Mapping[str, Any] | None] | None = None,
    startup_timeout: float = 5.0,
) -> AsyncIterator[FakeFleetHandle]:
    """Serve a fake fleet on a real socket in the running event loop (port 0: a free one)."""
    fleet = FakeFleet(auth=_auth(jwt_secret, jwt_audience, jwt_issuer), extra_categories=extra_categories)
    sock = _listen(host, port)
    server = _FleetServer(fleet, log_config=None, access_log=False)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="fake-fleet")
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:  # uvicorn offers a flag, not an event
            if serving.done():
                raise RuntimeError("the fake fleet did not start") from serving.exception()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fake fleet did not start within {startup_timeout} s")
            await asyncio.sleep(0.005)
        yield FakeFleetHandle(fleet, host, sock.getsockname()[1])
    finally:
        server.stop()
        await serving
        sock.close()


def _free_port(host: str) -> int:
    with _listen(host, 0) as sock:
        return sock.getsockname()[1]


def start_fake_fleet_process(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    jwt_secret: str | None = None,
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
    extra_categories: Mapping[str, Mapping[str, Any] | None] | None = None,
    records_file: Path | None = None,
    timeout: float = 15.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m task_scheduler.testing.fake_fleet`` and return once it answers.

    Port 0 picks a free port first. The caller owns the process: ``terminate()`` and
    ``wait()`` it when done; ``records_file`` then holds everything it received.
    """
    _auth(jwt_secret, jwt_audience, jwt_issuer)  # fail here, not in the child
    port = port or _free_port(host)
    argv = [sys.executable, "-m", "task_scheduler.testing.fake_fleet", "--host", host, "--port", str(port)]
    options = {"--jwt-secret": jwt_secret, "--jwt-audience": jwt_audience, "--jwt-issuer": jwt_issuer}
    argv += [part for option, value in options.items() if value is not None for part in (option, value)]
    if extra_categories:
        argv += ["--extra-categories", json.dumps(extra_categories)]
    if records_file is not None:
        argv += ["--records-file", str(records_file)]
    argv += ["--log-level", "warning"]
    process = subprocess.Popen(argv, preexec_fn=die_with_parent)
    url = _url("http", host, port)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + timeout
    while True:
        try:
            with direct.open(url + "/_fake/behaviour", timeout=1):
                return process, url
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            process.wait(timeout=5)
            raise RuntimeError(f"the fake fleet at {url} did not start (exit code {process.returncode})")
        time.sleep(0.05)


class FakeFleetProcess:
    """The fake fleet as a process of its own, stopped and started again on the same port (a
    fleet manager going down and coming back), and its control routes over HTTP.

    A restarted fleet knows nothing of what it received before (as a real one that keeps
    no state); :meth:`received` still returns every record of every run, oldest first.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **options: Any) -> None:
        self.host, self.port = host, port or _free_port(host)
        self.url = _url("http", host, self.port)
        self._options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        self._records_dir = tempfile.TemporaryDirectory(prefix="fake-fleet-")
        self._runs = 0
        self._earlier: list[dict[str, Any]] = []  # records of the runs before this one

    def __enter__(self) -> FakeFleetProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _records_file(self) -> Path:
        return Path(self._records_dir.name) / f"run-{self._runs}.json"

    def start(self) -> None:
        self._runs += 1
        self._process, _ = start_fake_fleet_process(
            self.port, self.host, records_file=self._records_file(), **self._options
        )

    def stop(self) -> None:
        """SIGTERM: requests in flight are answered, and the records kept, before it ends."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self._earlier += json.loads(self._records_file().read_text())

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        with self._direct.open(request, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else None

    def received(self) -> list[dict[str, Any]]:
        """Everything received, across restarts, since the first start or the last
        :meth:`clear`, as JSON records; the current run's only while it is up."""
        running = self._process is not None and self._process.poll() is None
        return self._earlier + (self._call("GET", "/_fake/received") if running else [])

    def counts(self, label_key: str) -> dict[str, int]:
        """Tasks kept per value of the label ``label_key`` (e.g. ``task_scheduler.task``)."""
        return self._call("GET", "/_fake/counts?" + urllib.parse.urlencode({"label_key": label_key}))

    def behave(self, *steps: Mapping[str, Any]) -> None:
        """Replace the behaviour plan (see the module docstring); no steps: accept everything."""
        self._call("PUT", "/_fake/behaviour", list(steps))

    def clear(self) -> None:
        self._earlier = []
        self._call("DELETE", "/_fake/received")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m task_scheduler.testing.fake_fleet",
        description="A fake Open-RMF fleet manager (api-server task routes) for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011, help="0 picks a free port (logged)")
    parser.add_argument("--jwt-secret", help="require HS256 bearer tokens signed with this secret")
    parser.add_argument("--jwt-audience", help="the aud tokens must carry (with --jwt-secret)")
    parser.add_argument("--jwt-issuer", help="the iss tokens must carry (with --jwt-secret)")
    parser.add_argument(
        "--extra-categories",
        default="{}",
        help='JSON object: task category -> JSON schema of its description, or null for any: {"tidy": null}',
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--records-file", help="on exit, write every record (as GET /_fake/received gives them) to this file"
    )
    args = parser.parse_args(argv)
    try:
        auth = _auth(args.jwt_secret, args.jwt_audience, args.jwt_issuer)
        extra_categories = json.loads(args.extra_categories)
        if not isinstance(extra_categories, dict):
            raise ValueError("--extra-categories must be a JSON object")
        fleet = FakeFleet(auth=auth, extra_categories=extra_categories)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve_until_signalled(_FleetServer(fleet, log_level=args.log_level), args.host, args.port))
    if args.records_file:
        records = [received.to_json() for received in fleet.recorder.records]
        Path(args.records_file).write_text(json.dumps(records))
    return 0


async def _serve_until_signalled(server: _FleetServer, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop)
    with _listen(host, port) as sock:
        logger.info("fake fleet listening on %s", _url("http", host, sock.getsockname()[1]))
        await server.serve(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
