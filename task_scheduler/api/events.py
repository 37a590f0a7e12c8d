"""``/events``: the event stream over a websocket, one JSON text message per event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect, WebSocketException
from starlette.websockets import WebSocketDisconnected

from task_scheduler.api.security import CLOSE_POLICY_VIOLATION, admit, bearer_token
from task_scheduler.domain.auth import Role
from task_scheduler.events import EventBus, EventSubscription

router = APIRouter(tags=["events"])

logger = logging.getLogger(__name__)

CLOSE_OVERFLOWED = 1013  # "try again later": the client fell behind and missed events
CLOSE_GOING_AWAY = 1001  # the service is shutting down
OVERFLOW_REASON = "too slow: events were dropped; reconnect and reload state"
SHUTDOWN_REASON = "server shutting down"
AUTH_MESSAGE_TIMEOUT_S = 10.0
NO_AUTH_REASON = 'a bearer token is required: first message {"type": "auth", "token": ...}'


@router.websocket("/events")
async def events(
    websocket: WebSocket, token: Annotated[str | None, Depends(bearer_token)], channel: str | None = None
) -> None:
    """Stream every event (or only those of ``channel``) as ``Event.to_json()`` text.

    The subscription starts before the handshake completes, so a client receives every
    event published after its connection opened.  A client that falls too far behind is
    closed with 1013 and a reason (it has missed events: reconnect and reload through
    the REST API); when the service shuts down the socket closes with 1001 (or the
    server's own 1012).  Messages from the client are read only to notice it leaving.

    With authentication on, the viewer role is needed.  The token goes in the
    ``Authorization`` header, or (what a browser can do) as the first message,
    ``{"type": "auth", "token": "..."}``, within 10 seconds of the socket opening;
    ``?token=`` still works.  A bad token in the header or query closes the socket with
    1008 before it opens, a bad first message right after.
    """
    services = websocket.app.state.services
    in_message = token is None and services.auth.enabled
    if not in_message:
        await admit(websocket, token, Role.viewer)
    bus: EventBus = services.events
    subscription = bus.subscribe_queue(channel=channel or None)
    try:
        await websocket.accept()
        if in_message:
            await admit(websocket, await _token_message(websocket), Role.viewer)
        watcher = asyncio.create_task(_close_on_disconnect(websocket, subscription), name="events-ws-watch")
        try:
            async for event in subscription:
                await websocket.send_text(event.to_text())
            if watcher.done():
                return  # the client left
            if subscription.overflowed:
                await websocket.close(code=CLOSE_OVERFLOWED, reason=OVERFLOW_REASON)
            else:
                await websocket.close(code=CLOSE_GOING_AWAY, reason=SHUTDOWN_REASON)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    except (WebSocketDisconnect, WebSocketDisconnected) as exc:
        # Sending raced the client's departure: nothing left to do but let go.
        logger.debug("events websocket gone: %r", exc)
    finally:
        subscription.close()


async def _token_message(websocket: WebSocket) -> str:
    """The token of the client's first message, ``{"type": "auth", "token": "..."}``; a
    close with 1008 when it is anything else or does not come in time."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_MESSAGE_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise WebSocketException(CLOSE_POLICY_VIOLATION, NO_AUTH_REASON) from None
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    token = message.get("token") if isinstance(message, dict) and message.get("type") == "auth" else None
    if not isinstance(token, str) or not token:
        raise WebSocketException(CLOSE_POLICY_VIOLATION, NO_AUTH_REASON)
    return token


async def _close_on_disconnect(websocket: WebSocket, subscription: EventSubscription) -> None:
    """End the subscription when the client disconnects, so the stream loop stops at once."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # the stream is one-way; anything the client says is ignored
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass
    finally:
        subscription.close()
