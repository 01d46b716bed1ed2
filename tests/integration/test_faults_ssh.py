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
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration import test_interrupted as interrupted
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


def deploying(prod: Prod, tmp_path: Path):
    """`inv deploy.prod --host prod` in the background, as the local kill points run `inv deploy.test`."""
    return interrupted.deploying(prod.project, tmp_path, "deploy.prod", "--host", "prod")


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


finish = interrupted.finish


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


# --- the kill-point matrix over SSH -------------------------------------------------------------------------------

def _said(proc: subprocess.Popen, text: str) -> bool:
    return text in proc.out.read_text() + proc.err.read_text()


def _serves(prod: Prod, revision: str) -> bool:
    try:
        return prod.project.health().get("revision") == revision
    except Exception:  # noqa: BLE001 - a refused or odd answer only means "not yet"
        return False


# Each kill point: when the deploy is at it, told by what it printed or by what the host shows.
KILL_POINTS = {
    "after lock": lambda prod, proc, serving, revision: _said(proc, "==> release"),
    "after upload": lambda prod, proc, serving, revision: _said(proc, "==> preflight"),
    "during backup": lambda prod, proc, serving, revision: _said(proc, "==> backup"),
    "during build": lambda prod, proc, serving, revision: _said(proc, "==> build"),
    "after start-beside": lambda prod, proc, serving, revision: any(c not in serving for c in prod.containers()),
    "after switch": lambda prod, proc, serving, revision: _serves(prod, revision),
    "during drain": lambda prod, proc, serving, revision: _said(proc, "draining"),
    "during prune": lambda prod, proc, serving, revision: _said(proc, "==> prune"),
}


def kill_when(prod: Prod, proc: subprocess.Popen, point: str, reached) -> str:
    """SIGKILL the whole deploy (its process group) once ``reached()``; the token of the lock it held, if any."""
    at = wait_for(lambda: reached() or proc.poll() is not None, timeout=300, interval=0.02)
    assert at and proc.poll() is None, f"{point}: the deploy ended first:\n{proc.err.read_text()[-2000:]}"
    token = holder_token(prod) if prod.lock.exists() else ""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return token


def test_a_deploy_sigkilled_at_each_phase_boundary_over_ssh_is_recovered_by_the_next_one(prod, tmp_path):
    """One project, one load for the whole run: 0 failed requests across every kill and every recovery."""
    prod.use(backup_before_deploy=True)  # so there is a backup to be killed in
    prod.deploy()
    measured = []
    with Load(prod.project.url + "/api/health", rate=RATE, max_seconds=1800) as load:
        for number, (point, reached) in enumerate(KILL_POINTS.items()):
            serving = prod.containers()
            revision = releases.one_line_change(prod.project, f"killed {point}")
            (tmp_path / f"kill-{number}").mkdir()
            with deploying(prod, tmp_path / f"kill-{number}") as proc:
                token = kill_when(prod, proc, point, lambda: reached(prod, proc, serving, revision))  # noqa: B023
            started = time.monotonic()
            again = prod.deploy()
            recovered = time.monotonic() - started
            measured.append((point, recovered))
            assert prod.project.health()["revision"] == revision, point
            assert len(prod.containers()) == 1, f"{point}: {again.stdout[-2000:]}"
            assert not prod.containers(all_states=True)[1:], f"{point}: no stopped leftover either"
            assert not token or not tagged(token), f"{point}: the killed deploy still runs on the host"
            assert not prod.lock.exists()
            assert prod.history()[-1]["result"] == "ok", point  # every line parses: the history is readable
            assert not [p for p in (prod.srv / "releases").iterdir() if p.name.startswith(".incoming")], point
        report = finish(load)
    print("\nkill-point matrix over SSH, time of the next deploy (recovery included): "
          + ", ".join(f"{point} {seconds:.1f}s" for point, seconds in measured) + f"; {report.describe()}")
