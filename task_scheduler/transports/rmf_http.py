"""Hand tasks to an rmf-web api-server over HTTP, and ask it which tasks it already has.

What each failure means for the dispatcher is decided here, once: whether the request
can have reached the fleet (``ambiguous``) is what separates a safe retry from a
lookup first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from yarl import URL

from task_scheduler.domain.allowlist import Allowlist
from task_scheduler.domain.storable import parse_json
from task_scheduler.domain.targets import RmfHttpTarget
from task_scheduler.transports.allowlist import NotAllowed, outbound_url, refusal_in
from task_scheduler.transports.auth import BearerAuth
from task_scheduler.transports.base import (
    Delivery,
    LookupFailed,
    Outcome,
    bounded,
    describe,
    error_text,
    logged,
    read_answer,
    shorten,
)

logger = logging.getLogger(__name__)

ROUTES: Final = {
    "dispatch_task_request": "/tasks/dispatch_task",
    "robot_task_request": "/tasks/robot_task",
}

_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)
"""Failures before the request left: the fleet cannot have it."""


@dataclass(frozen=True)
class _Answer:
    """A fleet's HTTP answer, read whole (the connection is back in the pool by then)."""

    status: int
    reason: str
    body: bytes

    def json(self) -> Any:
        """The body as JSON, made storable; ValueError when it is not JSON (or too deep)."""
        return parse_json(self.body)[0]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _reason(answer: _Answer) -> str:
    """``HTTP 401 Unauthorized: <detail>``, the detail taken from a JSON body when there is one."""
    head = f"HTTP {answer.status} {answer.reason}".rstrip()
    try:
        body = answer.json()
    except ValueError:
        return head
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return shorten(f"{head}: {detail}")
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return shorten(f"{head}: {error_text(body['errors'])}")
    return head


def _body(answer: _Answer) -> Any:
    """The answer as a Delivery keeps it: parsed JSON when it is, else a text excerpt."""
    try:
        return bounded(answer.json())
    except ValueError:
        return bounded(answer.text)


class RmfHttpTransport:
    """``POST`` task requests to an api-server; ``GET /tasks?label=`` to resolve doubt.

    The session is the service's shared one (connection reuse), so it is not closed here.
    At most ``max_connections`` requests are in flight: the rest wait here, in order, and
    their timeout starts once they are sent.
    """

    supports_lookup = True

    def __init__(
        self, config: RmfHttpTarget, http: aiohttp.ClientSession, allowlist: Allowlist | None = None
    ) -> None:
        """``allowlist``: the hosts that may be called (the session's resolver checks names,
        this the addresses a URL gives); None for any."""
        self._config = config
        self._http = http
        self._allowlist = allowlist
        self._auth = BearerAuth(config)
        self._slots = asyncio.Semaphore(config.max_connections)
        self.capacity = config.max_connections
        # sock_connect: a connection that cannot be made in time is "never sent", not a timeout.
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s, sock_connect=config.timeout_s)
        self._urls: dict[str, URL] = {}
        """Each route's URL as checked against the allowlist: the same for the transport's life."""

    def __repr__(self) -> str:
        return f"RmfHttpTransport(base_url={self._config.base_url!r}, auth={self._auth!r})"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **self._auth.headers()}

    async def _call(self, method: str, url: str, **options: Any) -> _Answer:
        target = self._urls.get(url)
        if target is None:
            target = self._urls[url] = outbound_url(self._allowlist, url)
        async with self._slots:
            async with self._http.request(
                method,
                target,
                headers=self._headers(),
                timeout=self._timeout,
                allow_redirects=False,
                **options,
            ) as response:
                return _Answer(response.status, response.reason or "", await response.read())

    async def submit(self, message: dict[str, Any]) -> Delivery:
        """Send one task request; every network or fleet failure comes back as a Delivery."""
        route = ROUTES.get(message.get("type"))
        if route is None:
            return Delivery(Outcome.FAILED, error=f"not a task submission: type {message.get('type')!r}")
        url = self._config.base_url + route
        try:
            answer = await self._call("POST", url, json=message)
        except (NotAllowed, *_NEVER_SENT) as error:
            refused = refusal_in(error)
            if refused is not None:  # a setting to change, not an outage to wait out
                delivery = Delivery(Outcome.REJECTED, error=str(refused))
            else:
                delivery = Delivery(
                    Outcome.FAILED, error=f"cannot reach the fleet: {describe(error)}", reached=False
                )
        except TimeoutError:  # sent, no answer in time: the fleet may be working on it
            delivery = Delivery(
                Outcome.TIMEOUT, error=f"no answer within {self._config.timeout_s:g} s", ambiguous=True
            )
        except aiohttp.ClientError as error:  # dropped after sending, garbled answer, ...
            delivery = Delivery(
                Outcome.UNKNOWN, error=f"the answer was lost: {describe(error)}", ambiguous=True
            )
        else:
            delivery = self._read(answer)
        return logged(logger, url, delivery)

    def _read(self, answer: _Answer) -> Delivery:
        if answer.status == 200:
            try:
                body = answer.json()
            except ValueError:
                return Delivery(
                    Outcome.UNKNOWN,
                    response=bounded(answer.text),
                    error="the fleet answered 200 with a body that is not JSON",
                    ambiguous=True,
                )
            return read_answer(body)
        if answer.status == 400:
            try:
                body = answer.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                return read_answer({**body, "success": False})
        # 5xx: the fleet may have taken the task before failing. Anything else it refused.
        return Delivery(
            Outcome.FAILED, response=_body(answer), error=_reason(answer), ambiguous=answer.status >= 500
        )

    async def find(self, label: str) -> str | None:
        """The booking id of the oldest task the fleet lists for ``label``; None if it lists none."""
        url = self._config.base_url + "/tasks"
        try:
            answer = await self._call("GET", url, params={"label": label})
        except (NotAllowed, *_NEVER_SENT) as error:
            raise LookupFailed(f"cannot ask the fleet at {url}: {describe(error)}", reached=False) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise LookupFailed(f"cannot ask the fleet at {url}: {describe(error)}") from error
        if answer.status != 200:
            raise LookupFailed(f"the fleet at {url} answered {_reason(answer)}")
        try:
            states = answer.json()
        except ValueError as error:
            raise LookupFailed(f"the fleet at {url} answered with a body that is not JSON") from error
        if not isinstance(states, list):
            raise LookupFailed(f"the fleet at {url} answered {type(states).__name__}, not a list of tasks")
        if not states:
            return None
        first = states[0]
        booking = first.get("booking") if isinstance(first, dict) else None
        task_id = booking.get("id") if isinstance(booking, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise LookupFailed(f"the fleet at {url} listed a task without booking.id")
        return task_id

    async def aclose(self) -> None:
        """Nothing to release: the shared session belongs to the caller."""
