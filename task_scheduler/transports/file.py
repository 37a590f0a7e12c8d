"""Carry out ``file`` tasks: read, write and copy inside directory targets and over HTTP.

Staying inside a directory: the path's text is checked (``domain.files``), then it is
opened one segment at a time, each relative to the directory already open and with
``O_NOFOLLOW``, so no symbolic link is followed below the target's own path, whatever
the link points at, and a link swapped in between a check and an open cannot redirect
it (there is no separate check). Only regular files are read (``O_NONBLOCK``, so a FIFO
cannot stall a thread). Writes go to a temporary file in the same directory, then
replace the destination in one rename, so a reader sees the old file or the new one,
never half of one. Sizes are bounded by the target's ``max_file_bytes`` on both sides.

Disk work runs in a thread (:func:`asyncio.to_thread`). A thread cannot be cancelled:
an attempt given up by ``max_execution_time_s`` may still finish its (atomic) write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Awaitable
from typing import Any, Final

import aiohttp

from task_scheduler.domain.files import segments
from task_scheduler.domain.targets import DEFAULT_MAX_FILE_BYTES, DirectoryTarget
from task_scheduler.kinds.base import TransportContext
from task_scheduler.transports.allowlist import NotAllowed, outbound_url, refusal_in
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome, bounded, describe, logged, shorten

logger = logging.getLogger(__name__)

CAPACITY: Final = 4
"""File tasks in flight at once per target (each holds a worker thread while on disk)."""
DOWNLOAD_LIMIT: Final = DEFAULT_MAX_FILE_BYTES
"""The most read from a URL when no directory sets a smaller limit."""
RETRYABLE_STATUSES: Final = frozenset({408, 429})

_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)
_DIRECTORY_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Stop(Exception):
    """Ends an attempt with this delivery."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.error)
        self.delivery = delivery


async def _at_end(role: str, own: str | None, work: Awaitable[Any]) -> Any:
    """``work`` on one end of the task. An end that cannot be reached, other than the task's
    own target, says nothing about that target: its failure is not taken for an outage of it."""
    try:
        return await work
    except Stop as stop:
        if role != own and not stop.delivery.reached:
            raise Stop(dataclasses.replace(stop.delivery, reached=True)) from None
        raise


def _refused(error: str) -> Stop:
    return Stop(Delivery(Outcome.REJECTED, error=error))


def _failed(error: str, *, reached: bool = True) -> Stop:
    return Stop(Delivery(Outcome.FAILED, error=shorten(error), reached=reached))


# -- disk (runs in a worker thread) ------------------------------------------------------


def _open_parent(directory: DirectoryTarget, path: str, *, create: bool) -> tuple[int, str]:
    """A descriptor of the directory holding ``path`` (inside the target) and the file's name.

    Every segment is opened relative to the last with O_NOFOLLOW: a symbolic link anywhere
    below the target is refused. ``create`` makes missing directories on the way.
    """
    try:
        parts = segments(path)
    except ValueError as error:
        raise _refused(f"{path!r}: {error}") from None
    try:
        fd = os.open(directory.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise _failed(
            f"directory {directory.path} cannot be opened: {error.strerror}", reached=False
        ) from None
    try:
        for depth, part in enumerate(parts[:-1]):
            where = "/".join(parts[: depth + 1])
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise _failed(f"{where} does not exist") from None
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile; opened below like any other
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refused(f"{where} is a symbolic link or not a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_file(directory: DirectoryTarget, path: str, limit: int) -> bytes:
    """The content of a regular file inside the directory, at most ``limit`` bytes."""
    parent, name = _open_parent(directory, path, create=False)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            raise _failed(f"{path} does not exist") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _refused(f"{path} is a symbolic link") from None
            raise _failed(f"{path}: {error.strerror}") from None
    finally:
        os.close(parent)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refused(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as file:
        if info.st_size > limit:
            raise _failed(f"{path} has {info.st_size} bytes, more than the limit of {limit}")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _failed(f"{path} grew beyond the limit of {limit} bytes while being read")
    return data


def write_file(directory: DirectoryTarget, path: str, data: bytes) -> None:
    """Replace (or create) a file inside the directory with ``data``, atomically."""
    if not directory.writable:
        raise _refused(f"directory {directory.path} is not writable (writable: false)")
    if len(data) > directory.max_file_bytes:
        raise _failed(f"{len(data)} bytes, more than max_file_bytes ({directory.max_file_bytes})")
    parent, name = _open_parent(directory, path, create=True)
    temporary = f".{name[:200]}.{secrets.token_hex(6)}.part"
    try:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=parent,
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
    except OSError as error:
        raise _failed(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        os.close(parent)


# -- the transport -----------------------------------------------------------------------


def _answer_status(status: int, reason: str) -> Stop | None:
    """None for a 2xx; else a failure worth retrying (408, 429, 5xx) or a refusal."""
    if 200 <= status < 300:
        return None
    head = f"HTTP {status} {reason}".rstrip()
    if status >= 500 or status in RETRYABLE_STATUSES:
        return Stop(Delivery(Outcome.FAILED, response={"status": status}, error=head))
    return Stop(Delivery(Outcome.REJECTED, response={"status": status}, error=head))


def _shown(end: dict[str, Any]) -> str:
    return end.get("url") or f"{end['target']}:{end['path']}"


def _summary(data: bytes, keep: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if keep == "content":
        summary["content"] = bounded(data.decode("utf-8", "replace"))
    return summary


class FileTransport:
    """Carries out file tasks. Each end's directory is looked up by name at every attempt,
    so one transport serves a task's target and the other directory of a copy, and an
    edited target takes effect at once."""

    supports_lookup = False

    def __init__(self, context: TransportContext) -> None:
        if context.targets is None:
            raise ValueError("file transports need a way to look targets up")
        self._http = context.http
        self._allowlist = context.allowlist
        self._targets = context.targets
        self.capacity = CAPACITY
        self._slots = asyncio.Semaphore(CAPACITY)

    def __repr__(self) -> str:
        return "FileTransport()"

    async def submit(self, message: dict[str, Any]) -> Delivery:
        where = message.get("op", "?")
        try:
            async with self._slots:
                return logged(logger, where, await self._carry_out(message))
        except Stop as stop:
            return logged(logger, where, stop.delivery)

    async def _directory(self, name: str) -> DirectoryTarget:
        config = await self._targets(name)
        if config is None:
            raise _failed(f"target {name!r} does not exist")
        if not isinstance(config, DirectoryTarget):
            raise _refused(f"target {name!r} is not a directory target")
        return config

    async def _carry_out(self, message: dict[str, Any]) -> Delivery:
        source, destination = message.get("source"), message.get("destination")
        ends = {
            role: await self._directory(end["target"])
            for role, end in (("source", source), ("destination", destination))
            if end is not None and "target" in end
        }
        limit = min((d.max_file_bytes for d in ends.values()), default=DOWNLOAD_LIMIT)
        keep, timeout_s = message.get("keep", "digest"), message.get("timeout_s", 30.0)
        response: dict[str, Any] = {"op": message["op"]}
        # The task's own target (what the dispatcher counts it against, and puts in outage when
        # it cannot be reached): the directory written to, else the one read from.
        own = next(
            (
                role
                for role, end in (("destination", destination), ("source", source))
                if end and "target" in end
            ),
            None,
        )
        if source is not None:
            if "url" in source:
                read = self._download(source["url"], limit, timeout_s)
            else:
                read = asyncio.to_thread(read_file, ends["source"], source["path"], limit)
            data = await _at_end("source", own, read)
            response["source"] = _shown(source)
        else:
            data = message["content"].encode()
        if destination is not None:
            if "url" in destination:
                response["status"] = await _at_end(
                    "destination", own, self._upload(destination, data, timeout_s)
                )
            else:
                write = asyncio.to_thread(write_file, ends["destination"], destination["path"], data)
                await _at_end("destination", own, write)
            response["destination"] = _shown(destination)
        return Delivery(Outcome.SUCCEEDED, response={**response, **_summary(data, keep)})

    async def _download(self, url: str, limit: int, timeout_s: float) -> bytes:
        async with self._call("GET", url, timeout_s) as response:
            stop = _answer_status(response.status, response.reason or "")
            if stop is not None:
                raise stop
            if response.content_length is not None and response.content_length > limit:
                raise _failed(f"{url} has {response.content_length} bytes, more than the limit of {limit}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise _failed(f"{url} sent more than the limit of {limit} bytes")
            return bytes(data)

    async def _upload(self, destination: dict[str, Any], data: bytes, timeout_s: float) -> int:
        async with self._call(
            destination.get("method", "PUT"), destination["url"], timeout_s, data
        ) as response:
            stop = _answer_status(response.status, response.reason or "")
            if stop is not None:
                raise stop
            return response.status

    @contextlib.asynccontextmanager
    async def _call(self, method: str, url: str, timeout_s: float, data: bytes | None = None) -> Any:
        """A response from ``url``, every failure turned into a :class:`Stop` as the http
        transport reads them (a refusal by the allowlist: rejected)."""
        try:
            async with self._http.request(
                method,
                outbound_url(self._allowlist, url),
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s),
                allow_redirects=False,
            ) as response:
                yield response
        except NotAllowed as error:
            raise _refused(str(error)) from None
        except _NEVER_SENT as error:
            refused = refusal_in(error)
            if refused is not None:
                raise _refused(str(refused)) from None
            raise _failed(f"cannot connect: {describe(error)}", reached=False) from None
        except TimeoutError:
            raise Stop(
                Delivery(
                    Outcome.TIMEOUT, error=f"no answer from {url} within {timeout_s:g} s", ambiguous=True
                )
            ) from None
        except aiohttp.ClientError as error:
            raise Stop(
                Delivery(Outcome.UNKNOWN, error=f"the answer was lost: {describe(error)}", ambiguous=True)
            ) from None

    async def find(self, label: str) -> str | None:
        raise LookupFailed("a directory or URL cannot be asked which tasks ran")

    async def aclose(self) -> None:
        """Nothing to release: the shared session belongs to the service."""
