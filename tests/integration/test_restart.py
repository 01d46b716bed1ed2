"""`deploy.restart` applies a changed env file through the same zero-downtime rollout as a deploy, locally and over
SSH (the test sshd in front of this machine's engine), under a steady load on the public port; `--hard` keeps the
all-at-once `compose restart`. The history records each restart with the env file's checksum, never its values.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.integration.test_remote import configure_prod
from tests.support.load import Load, Report

pytestmark = pytest.mark.integration

RATE = 20  # requests per second, as the issue asks
SETTLE = 1.5  # seconds of load after the restart: covers the old container's drain and removal


def marker() -> str:
    """Made here, so no shipped file can hold it: finding it proves where the value came from."""
    return f"flag-{uuid.uuid4().hex}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def environment(container: str) -> list[str]:
    return subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def inspect(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def restarted_under_load(project: Project, *args: str) -> tuple[subprocess.CompletedProcess, Report]:
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        load.wait(1.0)
        result = project.inv(*args)
        load.wait(SETTLE)
    report = load.report()
    load.kept_pace(report)
    return result, report


def test_restart_applies_a_changed_env_file_with_no_failed_request(project):
    before, after = marker(), marker()
    env_file = project.path / ".env"  # git ignores it: the tree stays clean
    project.write(".env", f"APP_FEATURE_FLAG={before}\n")
    project.configure(environments={"test": {"env_file": ".env"}})
    project.inv("deploy.test")
    [old] = project.containers()
    [proxy] = project.containers(service="proxy")
    old_sum = sha256(env_file)

    project.write(".env", f"APP_FEATURE_FLAG={after}\n")
    status = project.inv("deploy.status").stdout
    assert f"CHANGED since the last deploy (sha256 {old_sum[:12]} -> {sha256(env_file)[:12]})" in status
    assert "`inv deploy.restart` applies it without downtime" in status

    result, report = restarted_under_load(project, "deploy.restart")
    assert report.failed == 0, report.describe()
    [new] = project.containers()
    assert new != old, "the app container was replaced, not restarted in place"
    assert f"APP_FEATURE_FLAG={after}" in environment(new)
    assert project.health()["revision"] == project.head()
    assert project.containers(service="proxy") == [proxy], "the proxy holds the public port: it kept running"
    assert "proxy: kept running" in result.stdout
    assert "restarted app (rolled, no downtime) of test on local" in result.stdout
    assert f"healthy at revision {project.head()[:12]}" in result.stdout

    history = (project.path / ".deploy" / "test" / "history.jsonl").read_text()
    assert before not in history and after not in history
    deployed, restarted = [json.loads(line) for line in history.splitlines()]
    assert deployed["action"] == "deploy" and deployed["env_sha256_after"] == old_sum
    assert (restarted["action"], restarted["result"], restarted["revision"]) == ("restart", "ok", project.head())
    assert (restarted["env_sha256_before"], restarted["env_sha256_after"]) == (old_sum, sha256(env_file))
    assert restarted["who"] and restarted["started_at"] > deployed["started_at"]
    assert "unchanged since the last restart" in project.inv("deploy.status").stdout


def test_hard_restart_restarts_everything_at_once_says_it_costs_downtime_and_keeps_the_environment(project):
    before = marker()
    env_file = project.path / ".env"
    project.write(".env", f"APP_FEATURE_FLAG={before}\n")
    project.configure(environments={"test": {"env_file": ".env"}})
    project.inv("deploy.test")
    deployed_sum = sha256(env_file)
    [app], [proxy] = project.containers(), project.containers(service="proxy")
    started = {c: inspect(c)["State"]["StartedAt"] for c in (app, proxy)}
    project.write(".env", f"APP_FEATURE_FLAG={marker()}\n")

    result = project.inv("deploy.restart", "--hard")
    assert "at once (--hard, `compose restart`): this costs downtime" in result.stdout
    assert "`inv deploy.restart` without --hard applies the change" in result.stdout
    assert project.containers() == [app] and project.containers(service="proxy") == [proxy], "the same containers"
    assert all(inspect(c)["State"]["StartedAt"] != started[c] for c in (app, proxy)), "both were restarted"
    assert f"APP_FEATURE_FLAG={before}" in environment(app), "compose restart keeps the container's environment"
    assert project.health()["revision"] == project.head()

    last = json.loads((project.path / ".deploy" / "test" / "history.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["result"]) == ("restart", "ok")
    assert last["env_sha256_before"] == last["env_sha256_after"] == deployed_sum
    assert "CHANGED since the last restart" in project.inv("deploy.status").stdout


def test_restart_over_ssh_applies_the_hosts_env_file_with_no_failed_request(project, sshd, tmp_path):
    prod = configure_prod(project, sshd, tmp_path)
    prod.deploy()
    [old] = prod.containers()
    env_file = prod.srv / "shared" / ".env"
    old_sum, flag = sha256(env_file), marker()
    env_file.write_text(env_file.read_text() + f"APP_FEATURE_FLAG={flag}\n")

    assert "CHANGED since the last deploy" in prod.inv("deploy.status", "--host", "prod").stdout
    result, report = restarted_under_load(project, "deploy.restart", "--host", "prod")
    assert report.failed == 0, report.describe()
    [new] = prod.containers()
    assert new != old and f"APP_FEATURE_FLAG={flag}" in environment(new)
    assert f"restarted app (rolled, no downtime) of prod on {sshd.user}@prod" in result.stdout
    assert flag not in result.stdout + result.stderr

    restarted = prod.history()[-1]
    assert (restarted["action"], restarted["result"], restarted["revision"]) == ("restart", "ok", project.head())
    assert (restarted["env_sha256_before"], restarted["env_sha256_after"]) == (old_sum, sha256(env_file))
    assert flag not in (prod.srv / "state" / "history.jsonl").read_text()
    assert "unchanged since the last restart" in prod.inv("deploy.status", "--host", "prod").stdout
