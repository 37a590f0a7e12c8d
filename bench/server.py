"""Start the service as a real process on a free loopback port, for benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


@contextlib.contextmanager
def running_service(workdir: Path, **config: object) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    config_file = workdir / "bench_config.py"
    values = {
        "port": port,
        "db_url": f"sqlite://{workdir / 'bench.sqlite3'}",
        "log_level": "WARNING",
        **config,
    }
    config_file.write_text(f"config = {values!r}\n")
    env = {**os.environ, "RMF_TASK_SCHEDULER_CONFIG": str(config_file)}
    process = subprocess.Popen([sys.executable, "-m", "task_scheduler"], env=env, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("service did not become ready")
            time.sleep(0.05)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=10)
