"""Release hooks and `inv deploy.exec` on the real engine, locally and over a real sshd.

A ``pre_switch`` hook here is a migration that appends the revision it runs as (``$APP_REVISION``, from the image)
and the revision the public proxy serves while it runs to a file on the app's data volume: the serving container
then shows that the migration ran in the new image while the old release still took the traffic. A
``post_deploy`` hook appends the DEPLOY_* facts it receives to a file of the test. Nothing is mocked.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import textwrap

import pytest

from tests.conftest import VENV_BIN, Project
from tests.integration.test_existing_app import existing_app
from tests.integration.test_remote import configure_prod
from tests.support import releases
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20  # requests per second during the failing hook, as the issue asks
MIGRATIONS = "/data/migrations.log"

# The migration: which revision it runs as, and which one the proxy serves meanwhile ("none" before the first).
MIGRATE = ["python3", "-c", textwrap.dedent(f"""\
    import json, os, urllib.request
    try:
        seen = json.load(urllib.request.urlopen("http://proxy/api/health", timeout=5))["revision"]
    except Exception:
        seen = "none"
    with open({MIGRATIONS!r}, "a") as log:
        log.write(os.environ["APP_REVISION"] + " " + seen + "\\n")
    print("migrated to", os.environ["APP_REVISION"])
""")]
FAILING = ["sh", "-c", "echo applying 0042_users; echo 'no such table: users' >&2; exit 3"]


def notify(path) -> list[str]:
    """A post_deploy hook writing one JSON line of what it was told."""
    return ["sh", "-c", 'printf \'{"action":"%s","result":"%s","revision":"%s","env":"%s","host":"%s",'
            '"duration":"%s","reason":"%s"}\\n\' "$DEPLOY_ACTION" "$DEPLOY_RESULT" "$DEPLOY_REVISION" "$DEPLOY_ENV" '
            '"$DEPLOY_HOST" "$DEPLOY_DURATION" "$(printf %s "$DEPLOY_REASON" | tr -d \'"\\\\\')" >> "$0"', str(path)]


def notices(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def serving_file(project: Project, path: str, env: str = "test") -> str:
    [container] = project.containers(env)
    return subprocess.run(["docker", "exec", container, "cat", path], capture_output=True, text=True,
                          check=True).stdout


def history(project: Project, env: str = "test") -> list[dict]:
    path = project.path / ".deploy" / env / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def step_order(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("==> ")]


def test_pre_switch_runs_in_the_new_image_before_traffic_moves_and_a_failing_one_abandons_the_release(
        project, tmp_path):
    told = tmp_path / "post_deploy.jsonl"
    project.configure(hooks={"pre_switch": [MIGRATE], "post_deploy": [notify(told)]})
    first = project.head()
    deployed = project.inv("deploy.test")
    steps = step_order(deployed.stdout)
    assert steps.index("verify.build") < steps.index("hooks.pre_switch") < steps.index("rollout")
    assert f"migrated to {first}" in deployed.stdout, "the hook's output is shown"

    second = releases.one_line_change(project, "second")
    project.inv("deploy.test")
    assert project.health()["revision"] == second
    assert serving_file(project, MIGRATIONS).splitlines() == [f"{first} none", f"{second} {first}"], \
        "each migration ran in its new image, on the app's volume, while the release before it served"

    # A migration that fails: the release is abandoned under load, and the one before keeps serving.
    (serving,) = project.containers()
    project.configure(hooks={"pre_switch": [MIGRATE, FAILING]})
    third = releases.one_line_change(project, "third")
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        failed = project.inv("deploy.test", check=False)
        load.wait(1.0)
    report = load.report()
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    [error] = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: hooks.pre_switch[2] `sh -c ") and "exited 3: no such table: users" in error
    assert "applying 0042_users" in failed.stdout, "the failing hook's output is shown as it runs"
    assert "==> rollout" not in failed.stdout
    assert report.failed == 0, report.describe()
    assert {revision for _, revision in report.revisions()} == {second}
    assert project.containers() == [serving], "nothing running was touched"
    last = history(project)[-1]
    assert (last["revision"], last["result"]) == (third, "failed")
    assert "hooks.pre_switch[2]" in last["reason"] and "exited 3" in last["reason"]

    # post_deploy heard of every deploy and of the rollback, with its result and revision.
    project.inv("deploy.rollback")
    heard = [(n["action"], n["result"], n["revision"], n["env"], n["host"]) for n in notices(told)]
    assert heard == [("deploy", "ok", first, "test", "local"), ("deploy", "ok", second, "test", "local"),
                     ("deploy", "failed", third, "test", "local"), ("rollback", "ok", first, "test", "local")]
    assert "hooks.pre_switch[2]" in notices(told)[2]["reason"]
    assert all(float(n["duration"]) > 0 for n in notices(told))


def test_a_failing_post_deploy_hook_is_a_warning_and_the_deploy_stands(project, tmp_path):
    project.configure(hooks={"post_deploy": [["sh", "-c", "echo webhook down >&2; exit 22"],
                                             notify(tmp_path / "told.jsonl")]})
    result = project.inv("deploy.test")
    assert "warning: hooks.post_deploy[1] `sh -c 'echo webhook down >&2; exit 22'` exited 22: webhook down" \
        in result.stdout
    assert [n["result"] for n in notices(tmp_path / "told.jsonl")] == ["ok"], "the next hook still ran"
    assert history(project)[-1]["result"] == "ok"


def test_exec_runs_in_the_serving_image_with_its_volumes_and_returns_the_exit_code(project):
    project.inv("deploy.test")
    head = project.head()
    ran = project.inv("deploy.exec", "--cmd", "sh -c 'echo \"$APP_REVISION\"; ls -d /data; exit 7'", check=False)
    assert ran.returncode == 7, ran.stderr
    assert ran.stdout.splitlines()[-2:] == [head, "/data"]
    assert "Traceback" not in ran.stderr and "error:" not in ran.stderr
    ok = project.inv("deploy.exec", "--cmd", "python3 -m app --check")
    assert ok.returncode == 0
    assert project.containers() and len(project.containers()) == 1, "the one-off container is gone"

    # At a terminal (a pty from util-linux `script`): compose gets a TTY, and the exit code still comes through.
    line = shlex.join([str(VENV_BIN / "inv"), "deploy.exec", "--cmd", "sh -c 'test -t 0 && exit 5'"])
    at_terminal = subprocess.run(["script", "-qec", line, "/dev/null"], cwd=project.path, env=project.env(),
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert at_terminal.returncode == 5, at_terminal.stdout + at_terminal.stderr


def test_exec_after_a_failed_release_of_an_adopted_app_runs_the_serving_image(project):
    # The toolkit's compose override names the image of the release it was written for; a release abandoned by its
    # pre_switch hook leaves it naming that release. deploy.exec must still run what serves.
    existing_app(project)
    serving = project.head()
    project.inv("deploy.test")
    project.configure(hooks={"pre_switch": [FAILING]})
    abandoned = releases.one_line_change(project, "abandoned")
    assert project.inv("deploy.test", check=False).returncode == 1
    override = (project.path / ".deploy" / "test" / "compose.override.yml").read_text()
    assert abandoned[:12] in override
    ran = project.inv("deploy.exec", "--cmd", "sh -c 'echo \"$APP_REVISION\"'")
    assert ran.stdout.splitlines()[-1] == serving


def test_exec_and_pre_switch_over_ssh(project, sshd, tmp_path):
    prod = configure_prod(project, sshd, tmp_path)
    prod.use(hooks={"pre_switch": [MIGRATE]})
    prod.deploy()
    head = project.head()
    ran = prod.inv("deploy.exec", "--host", "prod", "--cmd", f"sh -c 'cat {MIGRATIONS}; exit 7'", check=False)
    assert ran.returncode == 7, ran.stderr
    assert f"{head} none" in ran.stdout.splitlines()
    assert prod.containers() and len(prod.containers()) == 1

    # At a terminal: a pty on the SSH connection, so compose on the host gets a TTY too.
    line = shlex.join([str(VENV_BIN / "inv"), "deploy.exec", "--host", "prod", "--cmd", "sh -c 'test -t 0 && exit 5'"])
    at_terminal = subprocess.run(["script", "-qec", line, "/dev/null"], cwd=project.path, env=project.env(),
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert at_terminal.returncode == 5, at_terminal.stdout + at_terminal.stderr
