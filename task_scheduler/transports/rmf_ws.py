"""Hand tasks to an Open-RMF websocket bridge: ``{request_id, json_msg}`` each way.

One connection per target, opened on first use and shared by concurrent submissions; a
reader task routes each reply to the submission waiting for its ``request_id``. After the
connection drops (or cannot be opened) the next attempt waits an exponential backoff, so a
fleet that is down is not hammered. The bridge cannot be queried, so an ambiguous outcome
here stays ambiguous: :meth:`RmfWsTransport.find` always raises.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State

from task_scheduler.domain.allowlist import Allowlist
from task_scheduler.domain.storable import parse_json
from task_scheduler.domain.targets import RmfWsTarget
from task_scheduler.logs import redacting
from task_scheduler.transports.allowlist import NotAllowed, dial
from task_scheduler.transports.auth import BearerAuth
from task_scheduler.transports.base import (
    SUBMISSION_TYPES,
    Delivery,
    LookupFailed,
    Outcome,
    bounded,
    logged,
    read_answer,
    shorten,
)

logger = logging.getLogger(__name__)

RECONNECT_MIN_S: Final = 0.1
"""The first reconnection delay; it doubles with each failure in a row, up to reconnect_max_s."""
_DIRECT: Final = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
"""No proxy from the environment (websockets 15 and later look there): the connection goes
to the address the allowlist approved, as aiohttp's does (``trust_env=False``)."""


class _Gone:
    """Stands for a reply that will never come: the connection went first."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Unreadable:
    """A reply whose ``json_msg`` is not JSON."""

    def __init__(self, text: str) -> None:
        self.text = text


class _NotConnected(Exception):
    """No connection, and none could be opened in time: nothing was sent."""


class _Refused(Exception):
    """The allowlist refuses the bridge's host: nothing was sent, and waiting will not help."""


class _Link:
    """One open connection and the requests awaiting their reply on it."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.reader: asyncio.Task[None] | None = None

    def fail_pending(self, reason: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_result(_Gone(reason))
        self.pending.clear()


def _describe(error: BaseException) -> str:
    if isinstance(error, InvalidStatus):
        response = error.response
        detail = response.body.decode("utf-8", "replace").strip() if response.body else ""
        return shorten(f"handshake refused: HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    return shorten(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


class RmfWsTransport:
    """Submit task requests over one lazily opened, automatically reopened bridge connection.

    Timing: opening the connection (including any backoff still to wait) and awaiting the
    reply are each bounded by the target's ``timeout_s``.
    """

    supports_lookup = False
    capacity = 64
    """Requests awaiting their replies at once on the one connection; more wait their turn."""

    def __init__(
        self,
        config: RmfWsTarget,
        allowlist: Allowlist | None = None,
        *,
        reconnect_min_s: float = RECONNECT_MIN_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._allowlist = allowlist  # the hosts that may be called; None for any
        self._auth = BearerAuth(config)
        self._reconnect_min_s = reconnect_min_s
        self._jitter = jitter
        self._link: _Link | None = None
        self._opening = asyncio.Lock()
        self._failures = 0
        """Connection failures and drops in a row, reset by the next reply."""
        self._retry_at = 0.0
        self._last_error = ""
        self._closed = False
        self._slots = asyncio.Semaphore(self.capacity)

    def __repr__(self) -> str:
        return f"RmfWsTransport(url={self._config.url!r}, auth={self._auth!r})"

    # Submitting.

    async def submit(self, message: dict[str, Any]) -> Delivery:
        """Send one task request and await its reply; failures come back as a Delivery."""
        async with self._slots:
            return await self._submit(message)

    async def _submit(self, message: dict[str, Any]) -> Delivery:
        if message.get("type") not in SUBMISSION_TYPES:
            return Delivery(Outcome.FAILED, error=f"not a task submission: type {message.get('type')!r}")
        try:
            link = await self._connection()
        except _Refused as error:
            return logged(logger, self._config.url, Delivery(Outcome.REJECTED, error=str(error)))
        except _NotConnected as error:
            return logged(
                logger,
                self._config.url,
                Delivery(Outcome.FAILED, error=f"cannot connect to the bridge: {error}", reached=False),
            )
        request_id = uuid.uuid4().hex
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        link.pending[request_id] = reply
        try:
            return logged(logger, self._config.url, await self._exchange(link, request_id, message, reply))
        finally:
            link.pending.pop(request_id, None)

    async def _exchange(
        self, link: _Link, request_id: str, message: dict[str, Any], reply: asyncio.Future[Any]
    ) -> Delivery:
        envelope = json.dumps({"request_id": request_id, "json_msg": json.dumps(message)})
        was_open = link.conn.state is State.OPEN
        try:
            await link.conn.send(envelope)
        except ConnectionClosed as error:
            # Closed before the send began: nothing went out. Lost while writing: it may have.
            if was_open:
                return Delivery(
                    Outcome.UNKNOWN, error=f"the connection was lost while sending: {error}", ambiguous=True
                )
            return Delivery(
                Outcome.FAILED, error=f"the connection closed before sending: {error}", reached=False
            )
        try:
            answer = await asyncio.wait_for(reply, self._config.timeout_s)
        except asyncio.TimeoutError:
            return Delivery(
                Outcome.TIMEOUT, error=f"no reply within {self._config.timeout_s:g} s", ambiguous=True
            )
        if isinstance(answer, _Gone):
            return Delivery(Outcome.UNKNOWN, error=f"no reply: {answer.reason}", ambiguous=True)
        if isinstance(answer, _Unreadable):
            return Delivery(
                Outcome.UNKNOWN,
                response=bounded(answer.text),
                error="the reply's json_msg is not JSON",
                ambiguous=True,
            )
        return read_answer(answer)

    # The connection.

    def _open_link(self) -> _Link | None:
        link = self._link
        return link if link is not None and link.conn.state is State.OPEN else None

    async def _connection(self) -> _Link:
        """The open connection, opening one if need be within ``timeout_s``."""
        link = self._open_link()
        if link is not None:
            return link
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.timeout_s
        try:
            await asyncio.wait_for(self._opening.acquire(), self._config.timeout_s)
        except asyncio.TimeoutError:
            raise _NotConnected("another attempt to connect is still under way") from None
        try:
            link = self._open_link()
            if link is not None:
                return link
            if self._closed:
                raise _NotConnected("the transport is closed")
            wait = self._retry_at - loop.time()
            if wait > deadline - loop.time():
                raise _NotConnected(f"{self._last_error}; next attempt in {wait:.1f} s")
            if wait > 0:
                await asyncio.sleep(wait)  # the backoff after a failure, within this caller's deadline
            return await self._open(max(deadline - loop.time(), 0.001))
        finally:
            self._opening.release()

    async def _open(self, timeout: float) -> _Link:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            uri, address = await asyncio.wait_for(dial(self._allowlist, self._config.url), timeout)
            # The URI names the host (Host header, TLS server name); host= is where to connect.
            conn = await connect(
                str(uri),
                host=address,
                port=uri.port,
                additional_headers=self._auth.headers(),
                logger=redacting("websockets.client"),  # at DEBUG it prints every header
                open_timeout=max(deadline - loop.time(), 0.001),
                close_timeout=min(self._config.timeout_s, 5.0),
                **_DIRECT,
            )
        except NotAllowed as error:
            raise _Refused(str(error)) from None
        except (OSError, asyncio.TimeoutError, WebSocketException) as error:
            self._failed(_describe(error))
            raise _NotConnected(self._last_error) from error
        if self._closed:  # closed while connecting
            await conn.close()
            raise _NotConnected("the transport is closed")
        link = _Link(conn)
        link.reader = asyncio.create_task(self._read(link), name=f"rmf-ws-reader {self._config.url}")
        self._link = link
        logger.info("connected to the RMF bridge at %s", self._config.url)
        return link

    def _failed(self, reason: str) -> None:
        """Count a failure and set when the next attempt may be made."""
        self._failures += 1
        self._last_error = reason
        ceiling = min(self._config.reconnect_max_s, self._reconnect_min_s * 2 ** min(self._failures - 1, 30))
        delay = ceiling * (0.5 + 0.5 * self._jitter())
        self._retry_at = asyncio.get_running_loop().time() + delay
        logger.info("RMF bridge at %s: %s; next attempt in %.2f s", self._config.url, reason, delay)

    async def _read(self, link: _Link) -> None:
        """Route replies until the connection ends, then fail what still awaits one."""
        reason = "the connection closed"
        try:
            async for data in link.conn:
                self._route(link, data)
        except ConnectionClosed as error:
            reason = f"the connection was lost: {error}"
        except Exception:
            logger.exception("reading from the RMF bridge at %s failed", self._config.url)
            reason = "reading from the connection failed"
            await link.conn.close()
        finally:
            if self._link is link:
                self._link = None
            if self._closed:
                reason = "the transport was closed"
            else:
                self._failed(reason)
            link.fail_pending(reason)

    def _route(self, link: _Link, data: str | bytes) -> None:
        """Hand a reply to the submission awaiting it; anything else is logged and ignored."""
        try:
            envelope = parse_json(data)[0]
        except ValueError:
            logger.debug("ignoring an unreadable message from the RMF bridge")
            return
        request_id = envelope.get("request_id") if isinstance(envelope, dict) else None
        future = link.pending.pop(request_id, None) if isinstance(request_id, str) else None
        if future is None or future.done():
            logger.debug("ignoring a reply for request %r: duplicate, late or unknown", request_id)
            return
        self._failures = 0
        json_msg = envelope.get("json_msg")
        if isinstance(json_msg, str):
            try:
                json_msg = parse_json(json_msg)[0]
            except ValueError:
                json_msg = _Unreadable(json_msg)
        future.set_result(json_msg)

    # The rest of the Transport protocol.

    async def find(self, label: str) -> str | None:
        """Always raises: the bridge answers submissions only."""
        raise LookupFailed("the websocket bridge cannot be queried")

    async def aclose(self) -> None:
        """Close the connection; submissions still awaiting a reply end as unknown."""
        self._closed = True
        link, self._link = self._link, None
        if link is None:
            return
        link.fail_pending("the transport was closed")
        await link.conn.close()
        if link.reader is not None:
            await link.reader
