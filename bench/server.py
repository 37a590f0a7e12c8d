"""The service as a real process for benchmarks (see task_scheduler.testing.service_process)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
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
