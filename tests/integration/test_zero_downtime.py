"""Zero downtime under load: a client sends GETs to the public port at a fixed rate the whole time.

One stack and one load run per target (local, and over the test sshd), steps in sequence (CI has two cores): a
deploy of a code change, a bad release that never gets healthy, a build that fails (local only: it fails before
the target matters), and a rollback. Each step must end with 0 failed requests
and the right revision serving; the bad ones must leave the very same container in place.
"""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.support import releases
from tests.support.load import Load, Report
from tests.support.sshd import ensure_sshd_available, running_sshd

pytestmark = pytest.mark.integration

RATE = 25  # requests per second; the issue asks for at least 20
SETTLE = 1.5  # seconds of load after each command: covers the old container's drain and removal
BOOT = 2  # seconds the app takes to listen, like a real service: a start-then-stop flow would show it


def _assert_served(report: Report, revision: str, *, allowed: set[str]) -> None:
    assert report.failed == 0, report.describe()
    served = {rev for _, rev in report.revisions()}
    assert served <= allowed, f"unexpected revisions served: {served - allowed}"
    assert report.last_revision() == revision


def test_deploy_bad_release_failed_build_and_rollback_lose_no_request(project):
    first = releases.slow_boot(project, BOOT)
    project.inv("deploy.test")

    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        second = releases.one_line_change(project, "second")
        _, report = load.during(lambda: project.inv("deploy.test"), SETTLE)
        _assert_served(report, second, allowed={first, second})
        (serving,) = project.containers()

        releases.unhealthy(project)
        result, report = load.during(lambda: project.inv("deploy.test", "--health-timeout", "6", check=False), SETTLE)
        assert result.returncode == 1 and f"still serving revision {second[:12]}" in result.stderr
        _assert_served(report, second, allowed={second})
        assert project.containers() == [serving]

        releases.restore(project, second)
        releases.broken_build(project)
        result, report = load.during(lambda: project.inv("deploy.test", check=False), SETTLE)
        assert result.returncode == 1
        assert "exited 3" in result.stderr or "non-zero code: 3" in result.stderr
        _assert_served(report, second, allowed={second})
        assert project.containers() == [serving], "a failed build touches nothing running"

        _, report = load.during(lambda: project.inv("deploy.rollback"), SETTLE)
        _assert_served(report, first, allowed={first, second})

    whole = load.report()
    assert whole.failed == 0, whole.describe()
    assert project.health()["revision"] == first


@pytest.fixture
def remote_port(project, tmp_path):
    """An environment `remote` on the test sshd (alias `prod`): same engine, reached the way production is."""
    reason = ensure_sshd_available()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "sshd", alias="prod") as sshd:
        port = free_port()
        project.configure(environments={"remote": {
            "host": "prod", "ssh_config": str(sshd.ssh_config), "known_hosts": str(sshd.known_hosts),
            "remote_dir": str(tmp_path / "srv"), "project": f"{project.name}-remote", "public_port": port,
            "compose_file": "docker-compose.test.yml", "drain_seconds": 2,
        }})
        yield port


def test_over_ssh_a_deploy_a_bad_release_and_a_rollback_lose_no_request(project, remote_port):
    deploy = ("deploy.env", "remote", "--skip-backup")
    first = releases.slow_boot(project, BOOT)
    project.inv(*deploy)

    with Load(f"http://127.0.0.1:{remote_port}/api/health", rate=RATE, max_seconds=300) as load:
        second = releases.one_line_change(project, "second")
        _, report = load.during(lambda: project.inv(*deploy), SETTLE)
        _assert_served(report, second, allowed={first, second})
        (serving,) = project.containers("remote")

        releases.unhealthy(project)
        result, report = load.during(lambda: project.inv(*deploy, "--health-timeout", "6", check=False), SETTLE)
        assert result.returncode == 1 and f"still serving revision {second[:12]}" in result.stderr
        _assert_served(report, second, allowed={second})
        assert project.containers("remote") == [serving]

        _, report = load.during(lambda: project.inv("deploy.rollback", "--env", "remote"), SETTLE)
        _assert_served(report, first, allowed={first, second})

    whole = load.report()
    assert whole.failed == 0, whole.describe()
