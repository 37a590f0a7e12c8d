"""The service as a real process for benchmarks (see task_scheduler.testing.service_process)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from task_scheduler.testing.service_process import ServiceProcess


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


@contextlib.contextmanager
def running_service(workdir: Path, **config: object) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start the service (SQLite in ``workdir`` unless ``db_url`` says otherwise) until the block ends."""
    service = ServiceProcess(workdir, **config)
    service.start()
    try:
        assert service.process is not None
        yield service.url, service.process
    finally:
        service.stop()


@contextlib.contextmanager
def threads_until_done(*loops: Callable[[threading.Event], None]) -> Iterator[None]:
    """Each ``loop`` in a thread of its own, given an event that is set when the block ends;
    the block ends once every thread has returned."""
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,)) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
