"""The command line: --version, --config, and help for each command."""

from __future__ import annotations

import pytest

from task_scheduler import __version__, cli


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"task_scheduler {__version__}"


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_command_has_its_own_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert cli.COMMANDS[command] in capsys.readouterr().out


def test_config_names_the_file_and_wins_over_the_environment(tmp_path, monkeypatch, capsys):
    good = tmp_path / "good.py"
    good.write_text("config = {'port': 8123}\n")
    bad = tmp_path / "bad.py"
    bad.write_text("config = {'no_such_option': 1}\n")
    monkeypatch.setenv("RMF_TASK_SCHEDULER_CONFIG", str(bad))
    assert cli.main(["--config", str(good), "check-config"]) == 0
    assert cli.main(["check-config", "--config", str(good)]) == 0
    assert cli.main(["check-config"]) == 2
    assert "no_such_option: unknown option" in capsys.readouterr().err


def test_a_missing_config_file_is_an_error_naming_it(tmp_path, capsys):
    assert cli.main(["--config", str(tmp_path / "absent.py"), "check-config"]) == 2
    assert "absent.py" in capsys.readouterr().err
