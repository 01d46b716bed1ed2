"""Odd input, as users type it: every bad flag, config value or config file is one line, a non-zero exit, no
traceback, in bounded time, and changes nothing (no container, no lock, no history line, no backup).

The table runs `inv` against one throwaway clone that is never deployed, so only the Docker engine's answer
"no container of this project" is needed. The db_path cases deploy for real.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time

import pytest

from tests.conftest import Project, make_project, remove_project_resources

pytestmark = pytest.mark.integration

BOUND_S = 20  # each case must finish within this; `health.wait --timeout inf` used to never return

FLAG_CASES = [
    ("deploy.test", "--health-timeout", "abc"),
    ("deploy.test", "--health-timeout", "nan"),
    ("deploy.test", "--health-timeout", "inf"),
    ("deploy.test", "--health-timeout", "-5"),
    ("deploy.test", "--health-timeout", "0"),
    ("deploy.test", "--health-timeout", "1e9"),
    ("deploy.test", "--health-timeout", ""),
    ("deploy.env", "test", "--health-timeout", "-inf"),
    ("deploy.rollback", "--health-timeout", "soon"),
    ("health.wait", "--timeout", "inf"),
    ("health.wait", "--timeout", "nan"),
    ("health.wait", "--timeout", "abc"),
    ("health.wait", "--timeout", "-1"),
    ("health.wait", "--interval", "0"),
    ("health.wait", "--interval", "nan"),
    ("deploy.status", "--releases", "abc"),
    ("deploy.status", "--releases", "0"),
    ("deploy.status", "--releases", "1.5"),
    ("deploy.status", "--releases", "99999"),
    ("backup.prune", "--keep", "0"),
    ("backup.prune", "--keep", "abc"),
    ("backup.prune", "--keep", "inf"),
    ("deploy.logs", "--tail", "-1"),
    ("deploy.logs", "--tail", "nan"),
]

# (id, changes to deploy.environments.test, or to the top level when given as ("top", {...}))
CONFIG_CASES = [
    ("health_timeout nan", {"health_timeout": float("nan")}),
    ("health_timeout inf", {"health_timeout": float("inf")}),
    ("health_timeout negative", {"health_timeout": -1}),
    ("health_timeout absurd", {"health_timeout": 1e9}),
    ("health_timeout text", {"health_timeout": "abc"}),
    ("health_timeout null", {"health_timeout": None}),
    ("health_interval zero", {"health_interval": 0}),
    ("connect_timeout inf", {"connect_timeout": float("inf")}),
    ("public_port zero", {"public_port": 0}),
    ("public_port too big", {"public_port": 70000}),
    ("drain_seconds negative", {"drain_seconds": -1}),
    ("keep_images zero", {"keep_images": 0}),
    ("min_free_mb negative", {"min_free_mb": -1}),
    ("check_command empty", {"check_command": []}),
    ("remote_dir relative", {"remote_dir": "srv/app"}),
    ("db_path relative", {"db_path": "data/app.db"}),
    ("app_dir relative", {"app_dir": "srv/app"}),
    ("app_service empty", {"app_service": ""}),
    ("app_service injection", {"app_service": "app;\n include /etc/passwd"}),
    ("proxy_service same as app", {"proxy_service": "app"}),
    ("upstream_file with space", {"upstream_file": "/etc/nginx/up stream.conf"}),
    ("health_path with newline", {"health_path": "/api/health\nX: y"}),
    ("health_path relative", {"health_path": "api/health"}),
    ("environment not a mapping", ("top", {"environments": {"test": 5}})),
    ("environments not a mapping", ("top", {"environments": ["test"]})),
]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("inputs"))
    yield proj
    remove_project_resources(proj.name)


def variant(clone: Project, tmp_path, change) -> Project:
    """The clone with its own runtime config file holding ``change`` on top of the clone's settings."""
    copy = dataclasses.replace(clone, config_file=tmp_path / "runtime.yaml", settings={
        "deploy": {**clone.settings["deploy"], "environments": {
            "test": dict(clone.settings["deploy"]["environments"]["test"])}}})
    if isinstance(change, tuple):
        copy.configure(**change[1])
    else:
        copy.configure(environments={"test": change})
    return copy


def refused(project: Project, *args: str, **env: str) -> str:
    """Run `inv`, assert the one-line refusal, and return that line."""
    started = time.monotonic()
    result = project.inv(*args, check=False, timeout=BOUND_S, DEPLOY_DEBUG="", **env)
    elapsed = time.monotonic() - started
    shown = f"inv {' '.join(args)} (exit {result.returncode}, {elapsed:.1f}s)\n{result.stdout}{result.stderr}"
    assert result.returncode != 0, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert_nothing_changed(project)
    return lines[0]


def assert_nothing_changed(project: Project) -> None:
    state = project.path / ".deploy" / "test"
    assert not (state / "lock").exists(), "a lock was left behind"
    assert not (state / "history.jsonl").exists(), "a history line was written"
    assert not (project.path / "backups").exists(), "a backup was started"
    running = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}-test"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert running == [], "a container was created"
    tree = subprocess.run(["git", "status", "--porcelain"], cwd=project.path, capture_output=True, text=True,
                          check=True).stdout
    assert tree == "", f"the work tree changed: {tree}"


@pytest.mark.parametrize("argv", FLAG_CASES, ids=lambda argv: " ".join(a or "''" for a in argv))
def test_a_bad_numeric_flag_is_one_usage_line(clone, argv):
    line = refused(clone, *argv)
    flag = next(a for a in argv if a.startswith("--"))
    assert line.startswith(f"error: {flag} "), line
    assert "e.g. " + flag in line, "the line ends with the fix"


@pytest.mark.parametrize(("name", "change"), CONFIG_CASES, ids=[name for name, _ in CONFIG_CASES])
def test_a_bad_config_value_is_one_config_line(clone, tmp_path, name, change):
    line = refused(variant(clone, tmp_path, change), "deploy.test")
    assert line.startswith("error: config error: deploy."), line
    key = next(iter(change[1] if isinstance(change, tuple) else change))
    assert key in line, line


@pytest.mark.parametrize(("text", "words"), [
    ("deploy:\n  app_name: [oops\n", "invalid YAML at line 3, column 1"),
    ("deploy:\n\tapp_name: oops\n", "invalid YAML at line 2, column 1"),
    ("deploy: 5\n", "deploy: must be a mapping, got integer 5"),
    ("- deploy\n", "must hold a mapping of settings"),
])
def test_a_broken_runtime_config_file_is_one_line(clone, tmp_path, text, words):
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    line = refused(clone, "deploy.test", INVOKE_RUNTIME_CONFIG=str(broken))
    assert line.startswith("error: config error: ") and words in line and str(broken) in line, line


def test_a_yaml_syntax_error_in_the_project_invoke_yaml_is_one_line(clone):
    config = clone.path / "invoke.yaml"
    original = config.read_text()
    config.write_text(original + "  check_endpoints: [\"/\"\n")
    try:
        started = time.monotonic()
        result = clone.inv("deploy.status", check=False, timeout=BOUND_S, DEPLOY_DEBUG="")
        assert time.monotonic() - started < BOUND_S
    finally:
        config.write_text(original)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: config error: {config}: invalid YAML at line "), lines[0]
    assert_nothing_changed(clone)


def test_deploy_debug_keeps_invokes_traceback_for_a_broken_file(clone, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("deploy: {app_name: [\n")
    result = clone.inv("deploy.test", check=False, timeout=BOUND_S, INVOKE_RUNTIME_CONFIG=str(broken),
                       DEPLOY_DEBUG="1")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("INVOKE_DEPLOY_PUBLIC_PORT", "eighty"),
                                                  ("INVOKE_DEPLOY_CHECK_COMMAND", "true")])
def test_an_environment_variable_of_the_wrong_type_is_one_line(clone, variable, value):
    line = refused(clone, "deploy.test", **{variable: value})
    assert line.startswith(f"error: config error: {variable}: "), line


def test_an_app_without_a_database_file_is_told_which_setting_to_change_then_deploys_with_db_path_null(project):
    project.configure(environments={"test": {"backup_before_deploy": True, "db_path": "/data/elsewhere/app.db"}})
    first = project.inv("deploy.test")
    assert "nothing to back up" in first.stdout, "the first deploy has no running app to back up"
    serving = project.head()

    project.write("NOTES.txt", "a second release\n")
    project.commit("second release")
    second = project.inv("deploy.test", check=False)
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert second.returncode == 1 and len(errors) == 1, second.stderr  # above it: the failing command and its output
    assert second.stderr.rstrip().endswith(errors[0])
    assert "no SQLite database at db_path /data/elsewhere/app.db" in errors[0]
    for setting in ("deploy.db_path", "backup_command", "db_path: null"):
        assert setting in errors[0]
    assert "==> build" not in second.stdout, "the deploy stopped before building"
    assert project.health()["revision"] == serving

    project.configure(environments={"test": {"db_path": None}})
    third = project.inv("deploy.test")
    assert "db_path is null and no backup_command is set: the app has no database to back up" in third.stdout
    assert project.health()["revision"] == project.head()

    nothing = project.inv("backup", check=False)
    lines = [line for line in (nothing.stdout + nothing.stderr).splitlines() if line.strip()]
    assert nothing.returncode == 1 and len(lines) == 1
    assert lines[0].startswith("error: nothing to back up in test: db_path is null")
    assert not (project.path / "backups" / "test").exists() or not any((project.path / "backups" / "test").iterdir())


def test_status_and_rollback_read_a_history_with_torn_and_hand_edited_lines(project):
    history = project.path / ".deploy" / "test" / "history.jsonl"
    history.parent.mkdir(parents=True)
    good = {"revision": "a" * 40, "image": f"{project.name}:{'a' * 12}", "env": "test", "who": "ann@laptop",
            "started_at": 1735689000.0, "duration_s": 4.2, "result": "ok"}
    history.write_text("\n".join([
        json.dumps(good),
        json.dumps({"revision": "b" * 40, "result": "ok"}),  # fields missing: filled
        json.dumps({**good, "revision": "c" * 40, "started_at": "yesterday", "who": None}),  # mistyped: filled
        json.dumps({"result": "ok"}),  # no revision: unreadable
        '{"revision": "dddd',  # cut short by a crash: unreadable
    ]) + "\n")

    status = project.inv("deploy.status", timeout=BOUND_S)
    assert "(2 unreadable history line(s) skipped" in status.stdout
    for revision in ("a", "b", "c"):
        assert revision * 12 in status.stdout
    assert "unknown time" in status.stdout

    rollback = project.inv("deploy.rollback", check=False, timeout=BOUND_S)
    errors = [line for line in (rollback.stdout + rollback.stderr).splitlines() if line.startswith("error:")]
    assert rollback.returncode == 1 and "Traceback" not in rollback.stderr, rollback.stderr
    assert len(errors) == 1 and "no app container is running" in errors[0]
