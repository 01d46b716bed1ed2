"""Config loading and ``python3 -m app --check``, run as a real subprocess with a crafted environment."""

from __future__ import annotations

import re

import pytest
from app_testing import REPO, REVISION, base_env, run_app

from app.config import SETTINGS, Config, ConfigError, Secret, load, redact_url

CHECK_LINE = re.compile(r"^app ok: (\d+) routes, revision (\S+)$")


def test_defaults():
    config = load({})
    assert config == Config()
    assert config.env == "development"
    assert config.port == 8000
    assert config.revision == "unknown"
    assert config.db_path == "/data/app.db"
    assert config.log_dir == "/logs"
    assert config.log_max_bytes == 10485760
    assert config.log_backup_count == 5
    assert config.drain_seconds == 10
    assert config.boot_delay == 0


def test_values_are_parsed_into_types():
    config = load({"APP_PORT": " 8080 ", "APP_LOG_LEVEL": "debug", "APP_ENV": "TEST", "APP_DRAIN_SECONDS": "2.5",
                   "APP_READY_UPSTREAMS": "http://a:1/x, https://b/y,", "APP_SECRET_KEY": "s" * 16})
    assert (config.port, config.log_level, config.env, config.drain_seconds) == (8080, "DEBUG", "test", 2.5)
    assert config.ready_upstreams == ("http://a:1/x", "https://b/y")
    assert isinstance(config.secret_key, Secret)
    assert "s" * 16 not in repr(config)


def test_empty_values_count_as_unset():
    assert load({"APP_PORT": "", "APP_REVISION": ""}) == Config()


def test_check_prints_exactly_one_line(tmp_path):
    done = run_app(["--check"], base_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    match = CHECK_LINE.match(lines[0])
    assert match and match.group(2) == REVISION
    assert int(match.group(1)) == 10  # the nine public routes plus /api/slow outside production


def test_check_counts_nine_routes_in_production(tmp_path):
    done = run_app(["--check"], base_env(tmp_path, APP_ENV="production", APP_SECRET_KEY="x" * 20))
    assert done.stdout.strip() == f"app ok: 9 routes, revision {REVISION}"


def test_check_creates_no_files(tmp_path):
    done = run_app(["--check"], base_env(tmp_path))
    assert done.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_check_with_a_bare_environment_reports_unknown_revision():
    done = run_app(["--check"], {})
    assert done.stdout.strip() == "app ok: 10 routes, revision unknown"


BAD_INPUTS = [
    ("APP_PORT", "abc", "config error: APP_PORT='abc' is not an integer (set a port 1-65535)"),
    ("APP_PORT", "0", "config error: APP_PORT='0' is out of range (set a port 1-65535)"),
    ("APP_PORT", "70000", "is out of range"),
    ("APP_ENV", "prod", "config error: APP_ENV='prod' is not one of development, test, production"),
    ("APP_LOG_LEVEL", "LOUD", "is not one of DEBUG, INFO, WARNING, ERROR"),
    ("APP_LOG_MAX_BYTES", "10MB", "is not an integer"),
    ("APP_LOG_BACKUP_COUNT", "-1", "is out of range"),
    ("APP_DRAIN_SECONDS", "soon", "is not a number"),
    ("APP_DRAIN_SECONDS", "nan", "is out of range"),
    ("APP_BOOT_DELAY", "-1", "is out of range"),
    ("APP_READY_TIMEOUT", "0", "is out of range"),
    ("APP_READY_UPSTREAMS", "ftp://host/x", "has an invalid URL 'ftp://host/x'"),
    ("APP_READY_UPSTREAMS", "http://", "has an invalid URL"),
    ("APP_REVISION", "abc def", "is not a valid revision"),
    ("APP_SECRET_KEY", "short", "config error: APP_SECRET_KEY is too short (5 characters; set at least 16"),
]


@pytest.mark.parametrize(("name", "value", "expected"), BAD_INPUTS, ids=[f"{n}={v}" for n, v, _ in BAD_INPUTS])
def test_each_bad_input_exits_2_with_one_line_naming_it(tmp_path, name, value, expected):
    done = run_app(["--check"], base_env(tmp_path, **{name: value}))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config error: {name}")
    assert expected in lines[0]


def test_serving_with_bad_config_exits_2_at_once(tmp_path):
    done = run_app([], base_env(tmp_path, APP_PORT="abc"), timeout=10)
    assert done.returncode == 2
    assert done.stderr.strip() == "config error: APP_PORT='abc' is not an integer (set a port 1-65535)"
    assert not (tmp_path / "data").exists()


def test_production_requires_a_secret_key(tmp_path):
    done = run_app(["--check"], base_env(tmp_path, APP_ENV="production"))
    assert done.returncode == 2
    assert done.stderr.startswith("config error: APP_SECRET_KEY is required when APP_ENV=production")


def test_every_problem_gets_its_own_line(tmp_path):
    done = run_app(["--check"], base_env(tmp_path, APP_ENV="production", APP_PORT="x", APP_LOG_LEVEL="y",
                                         APP_DEMO_USER="demo"))
    assert done.returncode == 2
    names = [line.split()[2].split("=")[0] for line in done.stderr.splitlines()]
    assert names == ["APP_PORT", "APP_LOG_LEVEL", "APP_SECRET_KEY", "APP_DEMO_PASSWORD"]


def test_secret_values_never_appear_in_errors(tmp_path):
    done = run_app(["--check"], base_env(tmp_path, APP_SECRET_KEY="tooshort-mark",
                                         APP_READY_UPSTREAMS="ftp://u:pw-mark-123@h/"))
    assert done.returncode == 2
    assert "tooshort-mark" not in done.stderr
    assert "pw-mark-123" not in done.stderr
    assert "ftp://u:***@h/" in done.stderr


def test_demo_credentials_come_in_pairs():
    with pytest.raises(ConfigError) as caught:
        load({"APP_DEMO_PASSWORD": "x"})
    assert caught.value.problems == ["APP_DEMO_USER is required when APP_DEMO_PASSWORD is set (set both or neither)"]


def test_masked_hides_secret_named_settings():
    config = load({"APP_SECRET_KEY": "k" * 20, "APP_DEMO_USER": "u", "APP_DEMO_PASSWORD": "p"})
    masked = config.masked()
    assert masked["APP_SECRET_KEY"] == "***"
    assert masked["APP_DEMO_PASSWORD"] == "***"
    assert masked["APP_DEMO_USER"] == "u"
    assert set(masked) == {setting.name for setting in SETTINGS}


def test_redact_url():
    assert redact_url("http://u:p@h:1/x") == "http://u:***@h:1/x"
    assert redact_url("http://h/x") == "http://h/x"


def test_every_setting_is_documented_in_env_example():
    documented = (REPO / ".env.example").read_text()
    for setting in SETTINGS:
        assert re.search(rf"^#? ?{setting.name}=", documented, re.MULTILINE), setting.name


@pytest.mark.parametrize("name", ["development.env", "production.env"])
def test_environment_files_are_valid_and_hold_no_secrets(name):
    values = {}
    for line in (REPO / "config" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    assert not [key for key, value in values.items() if value and any(
        word in key for word in ("SECRET", "PASSWORD", "TOKEN", "KEY"))]
    assert "APP_REVISION" not in values  # the image's own revision must win
    if name == "production.env":
        values["APP_SECRET_KEY"] = "x" * 16  # what the host's .env adds
    load(values)
