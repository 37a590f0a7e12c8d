"""Configuration: defaults documented in default_config.py, clear errors, env overrides."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from task_scheduler.config import ConfigError, Settings, build_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_config_lists_every_option_with_its_default():
    documented = runpy.run_path(str(ROOT / "default_config.py"))["config"]
    assert documented == Settings().model_dump()


def test_default_database_is_a_sqlite_file():
    assert Settings().db_url.startswith("sqlite://") and ":memory:" not in Settings().db_url


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"prot": 8000}, "prot: unknown option"),
        ({"port": 0}, "port:"),
        ({"timezone": "Mars/Olympus"}, "timezone:"),
        ({"log_level": "LOUD"}, "log_level:"),
        ({"db_url": "oracle://x"}, "db_url:"),
        ({"expansion_horizon_s": 1}, "expansion_horizon_s:"),
        ({"rmf_extra_categories": {"clean": None}}, "rmf_extra_categories:"),
        ({"dispatch_claim_ahead_s": -1}, "dispatch_claim_ahead_s:"),
        ({"lease_s": 2, "dispatch_claim_ahead_s": 1}, r"dispatch_claim_ahead_s \(1\) must be at most"),
    ],
)
def test_bad_values_name_the_key(values, named):
    with pytest.raises(ConfigError, match=named):
        build_settings(values, environ={})


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "site.py"
    path.write_text('config = {"log_level": "WARNING", "port": 9000}\n')
    settings = load_settings(
        {"RMF_TASK_SCHEDULER_CONFIG": str(path), "RMF_TASK_SCHEDULER_LOG_LEVEL": "debug"}
    )
    assert settings.log_level == "DEBUG"
    assert settings.port == 9000


def test_only_scalar_options_come_from_the_environment():
    settings = load_settings(
        {
            "RMF_TASK_SCHEDULER_REPLICA_ID": "replica-7",  # str | None: a scalar
            "RMF_TASK_SCHEDULER_TARGETS": "not a mapping",  # dict options stay the file's
            "RMF_TASK_SCHEDULER_RMF_EXTRA_CATEGORIES": "neither",
        }
    )
    assert settings.replica_id == "replica-7"
    assert list(settings.targets) == ["default"] and settings.rmf_extra_categories == {}


def test_config_file_problems_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({"RMF_TASK_SCHEDULER_CONFIG": str(tmp_path / "missing.py")})
    path = tmp_path / "wrong.py"
    path.write_text("settings = {}\n")
    with pytest.raises(ConfigError, match="must define a dict named 'config'"):
        load_settings({"RMF_TASK_SCHEDULER_CONFIG": str(path)})
    path.write_text("config = {'port': 'eighty'}\n")
    with pytest.raises(ConfigError, match="port:"):
        load_settings({"RMF_TASK_SCHEDULER_CONFIG": str(path)})


def test_no_file_means_defaults():
    assert load_settings({}) == Settings()


def test_secrets_key_takes_fernet_keys_comma_separated_and_never_echoes_a_bad_one():
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert build_settings({"secrets_key": f"{first}, {second}"}, environ={}).secrets_keys == [first, second]
    assert build_settings({}, environ={}).secrets_keys == []
    with pytest.raises(ConfigError, match=r"secrets_key: .*key 2 is not a Fernet key") as caught:
        build_settings({"secrets_key": f"{first},not-a-key-at-all"}, environ={})
    assert "not-a-key-at-all" not in str(caught.value) and first not in str(caught.value)
    from_env = build_settings({}, environ={"RMF_TASK_SCHEDULER_SECRETS_KEY": first})
    assert from_env.secrets_keys == [first] and first not in repr(from_env)
