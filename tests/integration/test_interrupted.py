"""A deploy that is killed mid-rollout leaves a state the next `inv deploy.test` recovers from by itself.

Real Docker, the real `inv` command, a load of 20 requests/s on the public port the whole time. The release being
deployed boots slowly (APP_BOOT_DELAY in the app's env file), so the rollout is waiting for its new container when
the signal arrives: SIGTERM (what a cancelled CI job sends), SIGKILL of the whole process group, and a lock left
by a deploy on another machine whose heartbeat stopped.
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

from tests.conftest import VENV_BIN, Project, wait_for
from tests.support import releases
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20  # requests per second, as the issue asks
BOOT = 10  # seconds the interrupted release takes to listen: the rollout is mid-wait when the signal comes
SETTLE = 1.5  # seconds of load after the last deploy: covers the old container's drain


def all_apps(project: Project) -> list[str]:
    """App containers of the test stack in any state: a stopped leftover counts too."""
    out = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter",
                          f"label=com.docker.compose.project={project.compose_project()}", "--filter",
                          "label=com.docker.compose.service=app"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def history(project: Project) -> list[dict]:
    path = project.path / ".deploy" / "test" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lock_dir(project: Project) -> Path:
    return project.path / ".deploy" / "test" / "lock"


@contextmanager
def deploying(project: Project, tmp_path: Path, *task: str):
    """`inv deploy.test` (or ``task``) in the background, in its own process group (so all of it can be killed at
    once); its stdout and stderr in files of ``tmp_path``, as ``proc.out`` and ``proc.err``."""
    out, err = tmp_path / "deploy.out", tmp_path / "deploy.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([str(VENV_BIN / "inv"), *(task or ("deploy.test",))], cwd=project.path,
                                env=project.env(),
                                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.out, proc.err = out, err
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_new_container(project: Project, proc: subprocess.Popen, serving: list[str]) -> str:
    """The new container the rollout started beside the serving one (it is booting, the rollout waits on it).
    Running, not only there: it is created while verify.build runs, and started once that passed."""
    fresh = wait_for(lambda: [c for c in project.containers() if c not in serving] or proc.poll() is not None,
                     timeout=300)
    assert isinstance(fresh, list), f"the deploy ended before starting a container:\n{proc.err.read_text()[-3000:]}"
    assert proc.poll() is None
    return fresh[0]


def finish(load: Load):
    load.wait(SETTLE)
    report = load.stop()
    load.kept_pace(report)
    assert report.failed == 0, report.describe()
    return report


def test_sigterm_mid_rollout_undoes_it_and_the_next_deploy_just_works(project, tmp_path):
    first = project.head()
    project.inv("deploy.test")
    [serving] = all_apps(project)

    with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
        second = releases.slow_boot(project, BOOT)
        with deploying(project, tmp_path) as proc:
            new = wait_for_new_container(project, proc, [serving])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 128 + signal.SIGTERM
        errors = [line for line in proc.err.read_text().splitlines() if line.startswith("interrupted")]
        assert errors == ["interrupted by SIGTERM: the deploy lock was released; check `inv deploy.status`"]
        assert "Traceback" not in proc.err.read_text()
        assert f"interrupted: removing {project.compose_project()}-app-2, which took no traffic" in proc.out.read_text()
        assert all_apps(project) == [serving] and new not in all_apps(project), "the new container was removed"
        assert not lock_dir(project).exists()
        last = history(project)[-1]
        assert (last["revision"], last["result"], last["reason"]) == (second, "interrupted", "interrupted by SIGTERM")
        assert project.health()["revision"] == first

        project.inv("deploy.test")  # no manual step in between
        report = finish(load)

    assert project.health()["revision"] == second
    assert len(all_apps(project)) == 1 and serving not in all_apps(project)
    assert report.last_revision() == second
    status = project.inv("deploy.status").stdout
    assert "interrupted by SIGTERM" in status and "lock       free" in status


def test_after_sigkill_the_next_deploy_takes_over_the_lock_and_clears_the_orphan(project, tmp_path):
    project.inv("deploy.test")
    [serving] = all_apps(project)

    with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
        second = releases.slow_boot(project, BOOT)
        with deploying(project, tmp_path) as proc:
            orphan = wait_for_new_container(project, proc, [serving])
            holder = json.loads((lock_dir(project) / "holder.json").read_text())
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        assert lock_dir(project).exists() and orphan in all_apps(project), "SIGKILL leaves both behind"

        result = project.inv("deploy.test")
        report = finish(load)

    assert f"took over the lock of {holder['holder']} (pid {holder['pid']}, " in result.stdout
    assert "whose process is gone" in result.stdout
    assert "left running by an interrupted deploy" in result.stdout
    assert project.health()["revision"] == second
    [now] = all_apps(project)
    assert now not in (serving, orphan)
    assert report.last_revision() == second
    assert not lock_dir(project).exists()


def test_a_lock_left_on_another_machine_is_refused_while_it_beats_and_taken_over_once_it_stops(project):
    project.inv("deploy.test")
    project.configure(environments={"test": {"lock_stale_seconds": 60}})
    held = lock_dir(project)
    held.mkdir(parents=True)
    holder = held / "holder.json"
    holder.write_text(json.dumps({"holder": "runner@ci-7", "pid": 4242, "revision": "c0ffee" * 6 + "c0ff",
                                  "started_at": time.time() - 900, "machine": "ci-7", "token": "gone"}) + "\n")

    with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
        second = releases.one_line_change(project, "second")
        refused = project.inv("deploy.test", check=False)
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and lines[0].startswith("error: [local] another deploy is running: runner@ci-7 "
                                                       "(pid 4242, revision c0ffeec0ffee")
        assert "last heartbeat" in lines[0] and "older than 60s (deploy.lock_stale_seconds)" in lines[0]
        assert json.loads(holder.read_text())["token"] == "gone"

        stopped = time.time() - 300
        os.utime(holder, (stopped, stopped))
        result = project.inv("deploy.test")
        report = finish(load)

    assert "took over the lock of runner@ci-7 (pid 4242, revision c0ffeec0ffee" in result.stdout
    assert "whose heartbeat stopped" in result.stdout
    assert project.health()["revision"] == second and report.last_revision() == second
    assert not held.exists()
