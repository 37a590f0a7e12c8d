"""A service that cannot open its database says so in one line and exits, instead of
hanging without opening its port."""

from __future__ import annotations

import time

import pytest

from task_scheduler.testing.service_process import ServiceProcess, free_port


@pytest.mark.parametrize(
    ("db_url", "shown", "reason"),
    [
        (
            "sqlite:///{workdir}/no/such/dir/scheduler.sqlite3",
            "sqlite:///{workdir}/no/such/dir/scheduler.sqlite3",
            "unable to open database file",
        ),
        (
            "postgres://scheduler:hunter2@127.0.0.1:{port}/scheduler",
            "postgres://scheduler:***@127.0.0.1:{port}/scheduler",
            "Connect call failed",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_ends_start_up_with_the_reason(tmp_path, db_url, shown, reason):
    port = free_port()  # nothing listens there
    service = ServiceProcess(tmp_path, db_url=db_url.format(workdir=tmp_path, port=port))
    began = time.monotonic()
    ended = service.run_to_exit(timeout=30)
    assert time.monotonic() - began < 15
    assert ended.returncode == 1, ended.stderr
    errors = [line for line in ended.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, ended.stderr
    assert f"cannot open the database {shown.format(workdir=tmp_path, port=port)}: " in errors[0]
    assert reason in errors[0]
    assert "hunter2" not in ended.stderr
