"""Run the scheduler as a real process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy
_PR_SET_PDEATHSIG = 1
# Loaded here: between fork and exec the child must not load libraries (other threads may
# hold the loader's lock).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """``preexec_fn`` for helper processes: Linux sends the child SIGTERM when the thread
    that started it ends, so a test run or benchmark killed by a signal leaves no service
    or fleet behind (one left running would claim tasks from a shared test database)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``python -m task_scheduler`` with a config file in ``workdir``; restartable, killable."""

    def __init__(self, workdir: Path, **config: Any) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = {
            "port": self.port,
            "db_url": f"sqlite://{workdir / 'scheduler.sqlite3'}",
            "log_level": "WARNING",
        }
        values.update(config)
        self.config_file = workdir / "scheduler_config.py"
        self.config_file.write_text(f"config = {values!r}\n")
        self.log_path = workdir / "service.log"
        """What the process wrote to stderr (its log), across restarts."""
        self.process: subprocess.Popen[bytes] | None = None
        # Extra environment, e.g. PYTHONPATH to run another source tree of the service.
        self.env: dict[str, str] = {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait until /readyz answers 200; return how long that took (seconds)."""
        env = {**os.environ, **self.env, "RMF_TASK_SCHEDULER_CONFIG": str(self.config_file)}
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "task_scheduler"],
                env=env,
                cwd=self.workdir,
                stderr=log,
                preexec_fn=die_with_parent,
            )
        deadline = began + timeout
        while True:
            try:
                with _DIRECT.open(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return time.monotonic() - began
            except (urllib.error.URLError, OSError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.log().splitlines()[-20:])
                raise RuntimeError(f"the service at {self.url} did not become ready; its log ends:\n{tail}")
            time.sleep(0.02)

    def run_to_exit(self, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run the service to its end (one that cannot start), with its exit code and output."""
        env = {**os.environ, "RMF_TASK_SCHEDULER_CONFIG": str(self.config_file)}
        return subprocess.run(
            [sys.executable, "-m", "task_scheduler"],
            env=env,
            cwd=self.workdir,
            preexec_fn=die_with_parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait: the graceful shutdown path."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("VmRSS not found")
