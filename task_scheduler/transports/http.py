"""Call URLs for ``http`` tasks and read what they answer into a run.

Success is a status the task expects (any 2xx by default) and, when ``fail_if_no_match``,
a body its regex matches. 408, 429 and 5xx are failures worth retrying; any other status
is a refusal, which is not retried. Only the first :data:`BODY_LIMIT` bytes of an answer
are read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

import aiohttp
import regex

from task_scheduler.domain.storable import parse_json
from task_scheduler.domain.targets import HttpTarget
from task_scheduler.kinds.base import TransportContext
from task_scheduler.kinds.http import REGEX_TIMEOUT_S
from task_scheduler.transports.allowlist import NotAllowed, outbound_url, refusal_in
from task_scheduler.transports.base import (
    EXCERPT_LIMIT,
    Delivery,
    LookupFailed,
    Outcome,
    bounded,
    describe,
    logged,
)

logger = logging.getLogger(__name__)

BODY_LIMIT: Final = 1024 * 1024
"""The most of an answer read; the rest is left unread."""
MAX_MATCHES: Final = 20
DIRECT_CAPACITY: Final = 16
"""Calls in flight at once to URLs given without a target."""
DEFAULT_TIMEOUT_S: Final = 10.0
RETRYABLE_STATUSES: Final = frozenset({408, 429})

_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def _matches(pattern: str, text: str) -> list[Any]:
    """Up to :data:`MAX_MATCHES` matches: the whole match, or its groups when it has any.
    Raises TimeoutError when the pattern takes longer than :data:`REGEX_TIMEOUT_S`."""
    found: list[Any] = []
    for match in regex.finditer(pattern, text, timeout=REGEX_TIMEOUT_S):
        found.append(list(match.groups()) if match.re.groups else match.group(0))
        if len(found) == MAX_MATCHES:
            break
    return found


class HttpTransport:
    """Calls through one ``http`` target, or (``config`` None) to absolute URLs."""

    supports_lookup = False

    def __init__(self, config: HttpTarget | None, context: TransportContext) -> None:
        self._config = config
        self._http = context.http
        self._allowlist = context.allowlist
        self.capacity = config.max_connections if config else DIRECT_CAPACITY
        self._slots = asyncio.Semaphore(self.capacity)

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={self._config.base_url if self._config else None!r})"

    def _request(self, message: dict[str, Any]) -> tuple[str, dict[str, str], float]:
        config = self._config
        headers = dict(message.get("headers") or {})
        if config is None:
            return message["url"], headers, message.get("timeout_s") or DEFAULT_TIMEOUT_S
        headers = {**config.headers, **headers, **config.secret_headers}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        return (
            config.base_url + (message.get("path") or ""),
            headers,
            message.get("timeout_s") or config.timeout_s,
        )

    async def submit(self, message: dict[str, Any]) -> Delivery:
        url, headers, timeout_s = self._request(message)
        body = message.get("body")
        options: dict[str, Any] = {}
        if isinstance(body, str):
            options["data"] = body.encode()
        elif body is not None:
            options["json"] = body
        if self._config is not None and not self._config.verify_tls:
            options["ssl"] = False
        started = time.perf_counter()
        try:
            target = outbound_url(self._allowlist, url)
            async with self._slots:
                async with self._http.request(
                    message.get("method", "GET"),
                    target,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s),
                    allow_redirects=False,
                    **options,
                ) as response:
                    raw = await response.content.read(BODY_LIMIT)
                    status, reason, content_type = (
                        response.status,
                        response.reason or "",
                        response.content_type,
                    )
        except NotAllowed as error:
            return logged(logger, url, Delivery(Outcome.REJECTED, error=str(error)))
        except aiohttp.InvalidURL as error:  # e.g. an address in a form the client will not use
            return logged(
                logger, url, Delivery(Outcome.REJECTED, error=f"not a usable URL: {describe(error)}")
            )
        except _NEVER_SENT as error:
            refused = refusal_in(error)
            if refused is not None:
                return logged(logger, url, Delivery(Outcome.REJECTED, error=str(refused)))
            return logged(
                logger,
                url,
                Delivery(Outcome.FAILED, error=f"cannot connect: {describe(error)}", reached=False),
            )
        except TimeoutError:
            return logged(
                logger,
                url,
                Delivery(Outcome.TIMEOUT, error=f"no answer within {timeout_s:g} s", ambiguous=True),
            )
        except aiohttp.ClientError as error:
            return logged(
                logger,
                url,
                Delivery(Outcome.UNKNOWN, error=f"the answer was lost: {describe(error)}", ambiguous=True),
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        return logged(logger, url, self._read(message, status, reason, content_type, raw, elapsed_ms))

    def _read(
        self,
        message: dict[str, Any],
        status: int,
        reason: str,
        content_type: str,
        raw: bytes,
        elapsed_ms: float,
    ) -> Delivery:
        text = raw.decode("utf-8", errors="replace")
        result: dict[str, Any] = {
            "status": status,
            "elapsed_ms": round(elapsed_ms, 3),
            "content_type": content_type,
            "body": text if len(text) <= EXCERPT_LIMIT else text[:EXCERPT_LIMIT] + "…",
        }
        if len(raw) >= BODY_LIMIT:
            result["truncated"] = True
        if "json" in content_type:
            try:
                value, note = parse_json(raw)
            except ValueError as error:
                if not isinstance(error, json.JSONDecodeError):  # too deep: say why it is left out
                    result["json_error"] = str(error)
            else:
                result["json"] = bounded(value)
                if note:
                    result["json_note"] = note
        pattern = message.get("regex")
        if pattern is not None:
            try:
                result["matches"] = _matches(pattern, text)
            except TimeoutError:
                return Delivery(
                    Outcome.FAILED,
                    response=result,
                    error=f"the regex took longer than {REGEX_TIMEOUT_S:g} s on the answer",
                )
        expected = message.get("expect_status")
        ok = status in expected if expected else 200 <= status < 300
        head = f"HTTP {status} {reason}".rstrip()
        if not ok:
            retryable = status >= 500 or status in RETRYABLE_STATUSES
            return Delivery(Outcome.FAILED if retryable else Outcome.REJECTED, response=result, error=head)
        if message.get("fail_if_no_match") and not result.get("matches"):
            return Delivery(Outcome.FAILED, response=result, error=f"{head}, but the regex found no match")
        return Delivery(Outcome.SUCCEEDED, response=result)

    async def find(self, label: str) -> str | None:
        raise LookupFailed("a web service cannot be asked which calls it received")

    async def aclose(self) -> None:
        """Nothing to release: the shared session belongs to the service."""
