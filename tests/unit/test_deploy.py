"""The deployment files say what the service accepts."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from task_scheduler import cli
from task_scheduler.config import build_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_compose_demo_config_is_valid():
    config = runpy.run_path(str(DEPLOY / "demo_config.py"))["config"]
    settings = build_settings(config, environ={})
    assert settings.targets["default"].base_url == "http://fleet:8011"


def test_the_systemd_unit_runs_commands_the_cli_has(tmp_path):
    unit = (DEPLOY / "task-scheduler.service").read_text()
    commands = re.findall(r"^Exec\w+=\S+/task_scheduler (.+)$", unit, flags=re.M)
    assert len(commands) == 2
    config = tmp_path / "task_scheduler.py"
    config.write_text("config = {}\n")
    for command in commands:
        args = command.replace("/etc/rmf/task_scheduler.py", str(config)).split()
        parsed = cli._parser().parse_args(args)
        assert parsed.config == str(config) and parsed.command in cli.COMMANDS


def test_the_image_serves_on_all_interfaces_with_a_health_check():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "RMF_TASK_SCHEDULER_HOST=0.0.0.0" in dockerfile
    assert "/readyz" in dockerfile and re.search(r"^USER \d+$", dockerfile, flags=re.M)
    db_url = re.search(r"RMF_TASK_SCHEDULER_DB_URL=(\S+)", dockerfile).group(1)
    assert build_settings({"db_url": db_url}, environ={}).db_url == db_url
