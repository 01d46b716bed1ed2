"""Faults over SSH on the real engine and a real sshd, 20 requests/s on the public port throughout: the SSH link
dropped mid-rollout (the sshd process serving the deploy killed), and the deploy SIGKILLed at phase boundaries.
Each time the command ends within the documented bound with one line, the site keeps serving, and the next deploy
proceeds unattended, leaving one app container and nothing of the killed deploy running on the host.

The measured times (to notice the fault, to recover with the next deploy) are printed: run with ``-s``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, wait_for
from tests.integration.test_remote import Prod, configure_prod, error_lines
from tests.integration.test_remote_work import tagged
from tests.support import releases
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20
BOOT = 10  # seconds the release being deployed takes to listen: the rollout waits on it when the fault comes
LINK_BOUND = 20.0  # docs/configuration.md, link_timeout: a closed link within 5 s, a silent one within 20 s


@pytest.fixture
def prod(project, sshd, tmp_path):
    return configure_prod(project, sshd, tmp_path)


@contextmanager
def deploying(prod: Prod, tmp_path: Path):
    """`inv deploy.prod --host prod` in the background, in its own process group."""
    out, err = tmp_path / "deploy.out", tmp_path / "deploy.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([str(VENV_BIN / "inv"), "deploy.prod", "--host", "prod"], cwd=prod.project.path,
                                env=prod.project.env(), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    proc.out, proc.err = out, err
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def slow_release(prod: Prod, label: str) -> str:
    """A new revision whose container boots in BOOT seconds (the host's env file, read when it is created)."""
    env = prod.srv / "shared" / ".env"
    lines = [line for line in env.read_text().splitlines() if not line.startswith("APP_BOOT_DELAY=")]
    env.write_text("\n".join([*lines, f"APP_BOOT_DELAY={BOOT}"]) + "\n")
    return releases.one_line_change(prod.project, label)


def new_container(prod: Prod, proc: subprocess.Popen, serving: list[str]) -> str:
    fresh = wait_for(lambda: [c for c in prod.containers() if c not in serving] or proc.poll() is not None,
                     timeout=300)
    assert isinstance(fresh, list), f"the deploy ended before starting a container:\n{proc.err.read_text()[-3000:]}"
    return fresh[0]


def holder_token(prod: Prod) -> str:
    return json.loads((prod.lock / "holder.json").read_text())["token"]


def finish(load: Load):
    load.wait(1.5)
    report = load.stop()
    load.kept_pace(report)
    assert report.failed == 0, report.describe()
    return report


def test_the_ssh_link_dropped_mid_rollout_ends_the_deploy_in_one_line_and_the_next_one_recovers(prod, tmp_path):
    first = prod.project.head()
    prod.deploy()
    [serving] = prod.containers()
    with Load(prod.project.url + "/api/health", rate=RATE, max_seconds=900) as load:
        second = slow_release(prod, "after the dropped link")
        with deploying(prod, tmp_path) as proc:
            booting = new_container(prod, proc, [serving])
            token = holder_token(prod)
            dropped = time.monotonic()
            assert prod.sshd.drop_sessions() >= 1
            code = proc.wait(timeout=120)
            noticed = time.monotonic() - dropped
        result = subprocess.CompletedProcess(proc.args, code, proc.out.read_text(), proc.err.read_text())
        assert code == 1, result.stderr[-3000:]
        [line] = error_lines(result)
        assert line.startswith("error: the SSH link to prod was lost (the connection closed); the deploy stopped"), line
        assert "never became healthy" not in result.stderr
        assert noticed < LINK_BOUND, f"noticed after {noticed:.1f}s"
        assert prod.project.health()["revision"] == first, "the site keeps serving the release it served"
        assert booting in prod.containers() and prod.lock.exists(), "the lost deploy left both behind"

        started = time.monotonic()
        again = prod.deploy()  # unattended: no unlock, no clean-up by hand
        recovered = time.monotonic() - started
        report = finish(load)

    assert "took over the lock of" in again.stdout and "whose process is gone" in again.stdout
    assert prod.project.health()["revision"] == second
    [now] = prod.containers()
    assert now not in (serving, booting)
    assert report.last_revision() == second
    assert not tagged(token), "nothing of the lost deploy runs on the host"
    assert prod.history()[-1]["result"] == "ok"
    print(f"\nSSH link dropped mid-rollout: noticed in {noticed:.1f}s, next deploy recovered in {recovered:.1f}s, "
          f"{report.describe()}")
