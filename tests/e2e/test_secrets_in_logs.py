"""No credential in the service's log, at DEBUG: a real service process, its log read back.

The service logs everything (``log_level`` DEBUG, uvicorn's access log on) while a user
logs in, opens ``/events`` with the token in the query, the header and the first message,
and a task goes to an RMF websocket bridge whose target carries a token.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from task_scheduler.testing.fake_fleet import WS_PATH, FakeFleetProcess
from task_scheduler.testing.service_process import ServiceProcess

pytestmark = pytest.mark.e2e

SECRET = "a-test-secret-that-is-long-enough-0123456789"
ADMIN, PASSWORD = "root", "root password 1"
BRIDGE_TOKEN = "bridge-token-4f9a1c77e2"
CLEAN = {"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}


async def _watch_events(ws_url: str, token: str, http: httpx.Client) -> None:
    """Open /events three ways; through each, see one event (a rule created) arrive."""
    ways = [
        {"uri": f"{ws_url}/events?token={token}"},
        {"uri": f"{ws_url}/events", "additional_headers": {"Authorization": f"Bearer {token}"}},
        {"uri": f"{ws_url}/events", "first": json.dumps({"type": "auth", "token": token})},
    ]
    for n, way in enumerate(ways):
        async with connect(
            way["uri"], additional_headers=way.get("additional_headers"), open_timeout=5
        ) as ws:
            if "first" in way:
                await ws.send(way["first"])
            body = {"name": f"watched {n}", "schedule": _later(), "task": CLEAN}
            created = await asyncio.to_thread(http.post, "/rules", json=body)
            assert created.status_code == 201, created.text
            seen = None
            while seen != ("rule.created", created.json()["id"]):
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
                seen = (event["type"], event["rule_id"])


def _later() -> dict:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    return {"kind": "interval", "every": 1, "unit": "hours", "start": start.isoformat(), "count": 1}


def test_no_token_or_password_reaches_the_log_at_any_level(tmp_path: Path) -> None:
    with FakeFleetProcess() as fleet:
        service = ServiceProcess(
            tmp_path,
            log_level="DEBUG",
            auth_enabled=True,
            auth_jwt_secret=SECRET,
            auth_admin_username=ADMIN,
            auth_admin_password=PASSWORD,
            targets={
                "default": {"kind": "rmf_http", "base_url": fleet.url},
                "bridge": {
                    "kind": "rmf_ws",
                    "url": fleet.url.replace("http", "ws", 1) + WS_PATH,
                    "token": BRIDGE_TOKEN,
                },
            },
        )
        service.start()
        try:
            with httpx.Client(base_url=service.url, timeout=10) as http:
                assert http.post("/auth/login", json={"username": ADMIN, "password": "wrong one"}).status_code
                login = http.post("/auth/login", json={"username": ADMIN, "password": PASSWORD})
                token = login.json()["access_token"]
                http.headers["Authorization"] = f"Bearer {token}"
                asyncio.run(_watch_events(service.url.replace("http", "ws", 1), token, http))

                body = {"name": "via the bridge", "schedule": _later(), "task": {**CLEAN, "target": "bridge"}}
                rule = http.post("/rules", json=body).json()
                assert http.post(f"/rules/{rule['id']}/run").status_code in (200, 201, 202)
                deadline = time.monotonic() + 15
                while not any(r["route"].startswith("WS") for r in fleet.received()):
                    assert time.monotonic() < deadline, "the bridge received nothing"
                    time.sleep(0.05)
        finally:
            service.stop()
    text = service.log()
    assert "WebSocket /events?token=[redacted]" in text  # uvicorn's line, with the URL cleaned
    assert "Authorization: [redacted]" in text  # the bridge handshake's header, at DEBUG
    for secret in (token, token.split(".")[2], BRIDGE_TOKEN, PASSWORD, SECRET):
        assert secret not in text
