"""The Swarm rollout engine on a real swarm: this engine as a single-node manager (initialised and left by the
suite when it was in none), and, marked ``swarm_nodes``, a second engine in a container joined as a worker.

Each test deploys the reference app as a stack (2 replicas, ``endpoint_mode: dnsrr``, start-first updates, a
front nginx published in ``host`` mode: this kernel has no IPVS for the ingress mesh or VIPs). The main tests go
through the real tasks (``inv deploy.test``, ``deploy.rollback``, ``deploy.status``, ``deploy.restart``,
``deploy.logs``, ``deploy.exec``, ``deploy.stop``/``start``, ``backup`` on an environment that says
``engine: swarm``, on this engine, on it as a manager reached over SSH through the test sshd, and with a second
engine joined as a worker); an unhealthy release and the not-deployed rollback drive ``deploy.swarm.rollout``
directly. Zero failed requests are asked of the load client where the issue asks.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import stat
import subprocess
import textwrap
import time

import pytest
import requests

from droplet_deploy.core.errors import RolloutFailed
from droplet_deploy.engines.swarm.rollout import rollback, rollout, status
from tests.conftest import BASE_IMAGE, PROXY_IMAGE
from tests.integration.test_hooks import FAILING
from tests.integration.test_remote import SECRET, configure_prod
from tests.support import releases
from tests.support.load import Load, Report
from tests.support.registry import IMAGE as REGISTRY_IMAGE
from tests.support.swarm import SwarmApp, remove_stack, single_node_swarm, worker_node

pytestmark = pytest.mark.integration

RATE = 20  # requests per second, as the issue asks
SETTLE = 3.0  # seconds of load after each rollout: covers the old tasks' removal from DNS and their drain
BOOT = 2  # seconds the app takes to listen, so a task listed before it listens would show as failures
BAD_TIMEOUT = 25  # seconds a bad release is given before the rollout gives up on it


@pytest.fixture(scope="module")
def manager():
    with single_node_swarm() as manager:
        yield manager


@pytest.fixture
def app(project, manager):
    swarm_app = SwarmApp(project, base_image=BASE_IMAGE, proxy_image=PROXY_IMAGE)
    yield swarm_app
    swarm_app.remove()


def _revisions_of(proofs) -> list[str | None]:
    return [p.verdict.revision for p in proofs]


def _assert_only(report: Report, revision: str, *, allowed: set[str]) -> None:
    assert report.failed == 0, report.describe()
    served = {rev for _, rev in report.revisions()}
    assert served <= allowed, f"unexpected revisions served: {served - allowed}"
    assert report.last_revision() == revision


@pytest.fixture
def swarm_env(project, manager):
    """The project's test environment with ``engine: swarm``: every step below is an ``inv`` task."""
    project.configure(health_timeout=120, swarm_registry_image=REGISTRY_IMAGE,
                      environments={"test": {"engine": "swarm", "replicas": 2}})
    yield project
    remove_stack(project.compose_project())


def _task_rows(status_text: str) -> list[tuple[str, str]]:
    """(task name ``app.<slot>@<node>``, revision) of each app task line of `inv deploy.status`."""
    rows = []
    for line in status_text.splitlines():
        words = line.split("<-")[0].split()
        if len(words) >= 2 and words[0] == "app" and "@" in words[1]:
            rows.append((words[1], words[-1]))
    return rows


def test_the_tasks_deploy_redeploy_under_load_roll_back_stack_wide_and_show_every_task(swarm_env):
    project = swarm_env
    first = releases.slow_boot(project, BOOT)
    deployed = project.inv("deploy.test")
    assert "every replica's own health answer (2/2 tasks)" in deployed.stdout, deployed.stdout
    kept_id = _image_id(f"{project.name}:{first[:12]}")

    with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
        second = releases.one_line_change(project, "second")
        _, step = load.during(lambda: project.inv("deploy.test"), SETTLE)
        _assert_only(step, second, allowed={first, second})

        swarm_dir = project.path / ".deploy" / "test" / "swarm"
        assert len(list(swarm_dir.glob("*.yml"))) == 1, "the first release's stack file went when the second served"
        stale = swarm_dir / f".exec-1-{time.time_ns() - 2 * 86_400 * 10**9}.env"
        recent = swarm_dir / f".exec-2-{time.time_ns()}.env"
        for planted in (stale, recent):
            planted.write_text("APP_SECRET=x\n")
        _, step = load.during(lambda: project.inv("deploy.rollback"), SETTLE)
        _assert_only(step, first, allowed={first, second})
    assert load.report().failed == 0, load.report().describe()
    assert _image_id(f"{project.name}:{first[:12]}") == kept_id, "the kept image served again, nothing rebuilt"

    status = project.inv("deploy.status").stdout
    rows = _task_rows(status)
    assert len(rows) == 2 and all(rev == first[:12] for _, rev in rows), status
    assert all(name.startswith("app.") and "@" in name for name, _ in rows), status
    assert "rollback" in status and "deploy" in status, status

    # The stack files hold the env file's values: only the one of the release in service is left, and a one-off's
    # env file left by a killed run goes a day later (planted: a run that leaves one is one SIGKILLed).
    assert sorted(p.name for p in swarm_dir.glob("*.yml")) == [f"{project.compose_project()}-{first[:12]}.yml"]
    assert not stale.exists() and recent.exists(), "a run still going on keeps its env file"


def test_a_bad_release_through_the_task_stays_out_and_is_recorded(swarm_env):
    project = swarm_env
    good = project.head()
    project.inv("deploy.test")
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        releases.wrong_revision(project)
        failed = project.inv("deploy.test", "--health-timeout", str(BAD_TIMEOUT), check=False)
        load.wait(SETTLE)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr, failed.stderr
    assert f"still serving revision {good[:12]} on 2/2 tasks" in failed.stdout + failed.stderr, failed.stderr
    _assert_only(load.report(), good, allowed={good})
    status = project.inv("deploy.status").stdout
    assert [rev for _, rev in _task_rows(status)] == [good[:12]] * 2, status
    assert "failed" in status, "the history records the failed release"


def _history(project) -> list[dict]:
    return [json.loads(line) for line in (project.path / ".deploy/test/history.jsonl").read_text().splitlines()]


def _running_task_ids(project) -> set[str]:
    return set(subprocess.run(["docker", "service", "ps", "--quiet", "--filter", "desired-state=running",
                               f"{project.compose_project()}_app"], capture_output=True, text=True,
                              check=True).stdout.split())


def test_restart_rolls_every_task_under_load_and_keeps_the_revision(swarm_env):
    project = swarm_env
    revision = releases.slow_boot(project, BOOT)
    project.inv("deploy.test")
    before = _running_task_ids(project)

    with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
        restarted, step = load.during(lambda: project.inv("deploy.restart"), SETTLE)
    _assert_only(step, revision, allowed={revision})
    assert "(docker service update --force)" in restarted.stdout, restarted.stdout
    # The plan says what Swarm does: task by task, start-first; not compose's "a new container beside the old one".
    assert (f"app: a rolling update of {project.compose_project()}_app (`docker service update --force`), task by "
            f"task: a new task of {project.name}:{revision[:12]}") in restarted.stdout, restarted.stdout
    assert "(start-first)" in restarted.stdout and "new container" not in restarted.stdout, restarted.stdout
    after = _running_task_ids(project)
    assert len(after) == 2 and not after & before, f"every task replaced: {before} -> {after}"
    rows = _task_rows(project.inv("deploy.status").stdout)
    assert [rev for _, rev in rows] == [revision[:12]] * 2, rows
    assert (_history(project)[-1]["action"], _history(project)[-1]["result"]) == ("restart", "ok")


def test_logs_exec_stop_and_start_work_on_the_swarm(swarm_env):
    project = swarm_env
    revision = project.head()
    project.inv("deploy.test")
    stack = project.compose_project()

    logs = project.inv("deploy.logs", "--tail", "50")
    assert f"{stack}_app.1." in logs.stdout, logs.stdout  # `docker service logs`: each line names its task
    one_service = project.inv("deploy.logs", "--follow", "--service", "app,proxy", check=False)
    assert one_service.returncode != 0 and "Traceback" not in one_service.stderr
    assert "--follow follows one service on engine: swarm" in one_service.stderr, one_service.stderr

    # The one-off container: the service's environment, the stack's network (the app by its service name), the
    # manager's copy of the app's volume, and the command's exit status as ours.
    script = ("import os, urllib.request; print('env', os.environ['APP_ENV']); "
              "print(urllib.request.urlopen('http://app:8000/api/health', timeout=5).read().decode()); "
              "open('/data/exec-was-here', 'w').write('x'); raise SystemExit(7)")
    ran = project.inv("deploy.exec", "--cmd", f"python3 -c {shlex.quote(script)}", check=False)
    assert ran.returncode == 7, ran.stdout + ran.stderr
    assert "env test" in ran.stdout and revision in ran.stdout, ran.stdout
    assert project.inv("deploy.exec", "--cmd", "test -f /data/exec-was-here").returncode == 0
    assert not list((project.path / ".deploy/test/swarm").glob(".exec-*")), "the env file is removed"

    stopped = project.inv("deploy.stop")
    assert "done: stop all services" in stopped.stdout, stopped.stdout
    assert not _running_task_ids(project)
    with pytest.raises(requests.ConnectionError):
        project.get("/api/health", timeout=3)
    status = project.inv("deploy.status").stdout
    assert "app (0/2 replicas)" in status and "proxy (0/1 replicas)" in status, status

    started = project.inv("deploy.start")
    assert "done: start all services" in started.stdout, started.stdout
    assert project.health()["revision"] == revision
    status = project.inv("deploy.status").stdout
    assert [rev for _, rev in _task_rows(status)] == [revision[:12]] * 2, status
    assert "proxy      -> tasks.app" in status, status
    assert [(r["action"], r["result"]) for r in _history(project)[-2:]] == [("stop", "ok"), ("start", "ok")]


def test_backups_copy_the_database_from_the_task_on_the_manager_and_restore_into_every_replica(swarm_env):
    project = swarm_env
    project.configure(environments={"test": {"backup_before_deploy": True}})
    first = project.head()
    project.inv("deploy.test")  # nothing runs yet: nothing to back up
    for text in ("first", "second"):
        answer = requests.post(project.url + "/api/quotes", json={"text": text, "author": "test"}, timeout=10)
        assert answer.status_code == 201, answer.text

    result = project.inv("backup")
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    backup_id = line.split()[1].rstrip(":")
    stored = project.path / "backups" / "test" / backup_id
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["revision"] == first and manifest["database"]["container"].startswith("app.")
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(stored / f["path"]).st_mode) == 0o600 for f in manifest["files"])
    assert any(f["path"].startswith("logs/app.") for f in manifest["files"]), manifest["files"]
    with sqlite3.connect(stored / "database.sqlite3") as db:
        assert [row[0] for row in db.execute("SELECT text FROM quotes ORDER BY id")] == ["first", "second"]
    assert "intact" in project.inv("backup.verify", backup_id).stdout

    releases.one_line_change(project, "second")
    project.inv("deploy.test")
    assert _history(project)[-1]["backup"], "the deploy backed up first and recorded it"

    # Every replica runs on this one node and shares its volume: a restore reaches them all.
    answer = requests.post(project.url + "/api/quotes", json={"text": "third", "author": "test"}, timeout=10)
    assert answer.status_code == 201, answer.text
    restored = project.inv("backup.restore", backup_id, "--yes")
    assert "restore" in restored.stdout, restored.stdout
    seen = set()
    for _ in range(10):  # the front nginx spreads these over both tasks
        answer = requests.get(project.url + "/api/quotes", timeout=10)
        assert answer.status_code == 200, answer.text
        seen.add(tuple(q["text"] for q in answer.json()["quotes"]))
    assert seen == {("first", "second")}, seen
    assert [h["action"] for h in _history(project)][-1] == "restore", _history(project)


def test_a_manager_over_ssh_deploys_redeploys_under_load_shows_every_task_and_rolls_back(project, manager, sshd,
                                                                                       tmp_path):
    # The manager is this machine's engine behind the test sshd: `host: prod` reaches it the way a user's
    # laptop reaches a droplet, one SSH connection per task.
    prod = configure_prod(project, sshd, tmp_path)
    prod.use(engine="swarm", replicas=2, health_timeout=120)
    try:
        first = releases.slow_boot(project, BOOT)
        logins = prod.logins()
        deployed = prod.deploy()
        assert prod.logins() - logins == 1, "one SSH connection carries every command of a deploy"
        assert "every replica's own health answer (2/2 tasks)" in deployed.stdout, deployed.stdout
        assert f"deployed {first[:12]} to prod on {sshd.user}@prod" in deployed.stdout, deployed.stdout
        assert SECRET not in deployed.stdout + deployed.stderr
        # The stack file holds the environment compose resolved from the host's env file: the owner's only.
        (stack_file,) = (prod.srv / "state" / "swarm").glob(f"*-{first[:12]}.yml")
        assert SECRET in stack_file.read_text() and stat.S_IMODE(stack_file.stat().st_mode) == 0o600

        with Load(project.url + "/api/health", rate=RATE, max_seconds=600) as load:
            second = releases.one_line_change(project, "second")
            logins = prod.logins()
            _, step = load.during(prod.deploy, SETTLE)
            assert prod.logins() - logins == 1
            _assert_only(step, second, allowed={first, second})

            status = prod.inv("deploy.status", "--host", "prod").stdout
            assert [rev for _, rev in _task_rows(status)] == [second[:12]] * 2, status

            _, step = load.during(lambda: prod.inv("deploy.rollback", "--host", "prod"), SETTLE)
            _assert_only(step, first, allowed={first, second})
        assert load.report().failed == 0, load.report().describe()
        status = prod.inv("deploy.status", "--host", "prod").stdout
        assert [rev for _, rev in _task_rows(status)] == [first[:12]] * 2, status
        assert [(r["action"], r["result"]) for r in prod.history()] == [("deploy", "ok"), ("deploy", "ok"),
                                                                         ("rollback", "ok")]
    finally:
        remove_stack(prod.compose)


# A migration: the revision it runs as ($APP_REVISION, from the image), the revision the app's tasks serve meanwhile
# (through the stack's network, "none" before the stack exists), and the environment every task gets.
MIGRATE = ["python3", "-c", textwrap.dedent("""\
    import json, os, urllib.request
    try:
        seen = json.load(urllib.request.urlopen("http://app:8000/api/health", timeout=5))["revision"]
    except Exception:
        seen = "none"
    with open("/data/migrations.log", "a") as log:
        log.write(" ".join([os.environ["APP_REVISION"], seen, os.environ["APP_ENV"]]) + "\\n")
    print("migrated to", os.environ["APP_REVISION"])
""")]


def test_pre_switch_hooks_run_in_the_new_image_as_a_task_would_and_a_failing_one_keeps_the_release_out(swarm_env):
    project = swarm_env
    project.configure(hooks={"pre_switch": [MIGRATE]})
    first = project.head()
    deployed = project.inv("deploy.test")  # before the stack exists: the environment its stack file gives
    assert f"migrated to {first}" in deployed.stdout, deployed.stdout

    project.configure(hooks={"pre_switch": [MIGRATE, FAILING]})
    third = releases.one_line_change(project, "never served")
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        failed = project.inv("deploy.test", check=False)
        load.wait(1.0)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    [error] = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: hooks.pre_switch[2] `sh -c ") and "exited 3: no such table: users" in error
    assert "==> rollout" not in failed.stdout
    _assert_only(load.report(), first, allowed={first})
    status = project.inv("deploy.status").stdout
    assert [rev for _, rev in _task_rows(status)] == [first[:12]] * 2, "the previous release on every task"
    assert (_history(project)[-1]["revision"], _history(project)[-1]["result"]) == (third, "failed")

    project.configure(hooks={"pre_switch": [MIGRATE]})
    second = releases.one_line_change(project, "second")
    project.inv("deploy.test")
    log = project.inv("deploy.exec", "--cmd", "cat /data/migrations.log").stdout.split("\n")
    assert [line for line in log if line.count(" ") == 2] == \
        [f"{first} none test", f"{third} {first} test", f"{second} {first} test"], \
        "each ran in its new image, with the tasks' environment and volume, on the stack's network while the " \
        "release before it served"


# The wrong revision goes through the task above; an unhealthy one is driven here, directly.
@pytest.mark.parametrize("bad", [releases.unhealthy], ids=["unhealthy"])
def test_a_bad_release_stays_out_and_the_previous_one_serves_every_task(app, bad):
    good = app.project.head()
    rollout(app.target, app.release(good), timeout=120)

    with Load(app.url + "/api/health", rate=RATE, max_seconds=300) as load:
        broken = app.release(bad(app.project))
        with pytest.raises(RolloutFailed) as failed:
            load.during(lambda: rollout(app.target, broken, timeout=BAD_TIMEOUT), SETTLE)
        load.wait(SETTLE)
    message = str(failed.value)
    assert "rolled back" in message and f"still serving revision {good[:12]} on 2/2 tasks" in message, message
    whole = load.report()
    _assert_only(whole, good, allowed={good})
    rows = status(app.target, app.stack, broken)
    assert _revisions_of(rows) == [good, good]
    assert {r.image for r in rows} == {app.image(good)}


def test_a_stack_that_is_not_deployed_cannot_be_rolled_back(app):
    from droplet_deploy.core.errors import RollbackImpossible

    release = app.release(app.project.head())
    with pytest.raises(RollbackImpossible, match="not deployed"):
        rollback(app.target, release)


@pytest.mark.swarm_nodes
def test_two_engines_get_the_image_and_every_replica_reports_the_new_revision(swarm_env, manager):
    project = swarm_env
    with worker_node(manager) as worker:
        if isinstance(worker, str):
            # CI starts everything the suite needs: a second engine that cannot run there is a failure.
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"a second engine cannot run here: {worker}")
        # The worker as a user names one: a DOCKER_HOST the manager's docker CLI reaches (here a socket of the
        # engine in the container; on a cluster ssh://deploy@worker-1). Swarm spreads 2 replicas over 2 nodes.
        project.configure(environments={"test": {"swarm_nodes": [worker.docker_host]}})
        nodes = {_engine_name(), worker.container}
        try:
            first = project.head()
            deployed = project.inv("deploy.test")
            assert f"sending {project.name}:{first[:12]} to " in deployed.stderr, deployed.stderr
            _assert_tasks_on(project, nodes, first)
            # A task on the worker has its own volume: a restore into the manager's copy is refused up front.
            refused = project.inv("backup.restore", "20250101T120000Z-abc123def456", "--yes", check=False)
            assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
            assert f"needs every task of {project.compose_project()}_app on the manager, and some run on " \
                   f"{worker.container}" in refused.stderr, refused.stderr

            with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
                second = releases.one_line_change(project, "second")
                redeployed, step = load.during(lambda: project.inv("deploy.test"), SETTLE)
            _assert_only(step, second, allowed={first, second})
            assert "every replica's own health answer (2/2 tasks)" in redeployed.stdout, redeployed.stdout
            image = f"{project.name}:{second[:12]}"
            assert _image_id(image, worker.docker_host) == _image_id(image), "the manager's image, by ID"
            # A start-first update may place both new tasks on one node (each slot's new task ties between two
            # nodes that run one task each): where they run is Swarm's choice, what they serve is ours.
            _assert_tasks_on(project, nodes, second, spread=False)
            # The next releases go through the manager's registry, relayed to the worker's own loopback. The
            # first such pull also moves the layers the worker got by `docker load` (its engine knows a layer by
            # its registry digest only once it has pulled it); from then on a one-line release moves only the
            # layers the worker lacks, as the relay counts what it carried.
            assert "docker save | docker load" not in redeployed.stderr, redeployed.stderr
            assert _moved(redeployed.stderr, worker.container) > 0
            third = releases.one_line_change(project, "third")
            again = project.inv("deploy.test")
            assert "docker save | docker load" not in again.stderr, again.stderr
            image = f"{project.name}:{third[:12]}"
            assert _image_id(image, worker.docker_host) == _image_id(image), "the manager's image, by ID"
            carried = _moved(again.stderr, worker.container)
            assert 0 < carried < _image_size(image) / 20, (carried, again.stderr)
            _assert_tasks_on(project, nodes, third, spread=False)
            registry = f"{project.compose_project()}-image-registry"
            assert _published(registry) == ["127.0.0.1"], "the registry listens on the manager's loopback only"
            assert not _relays_left(worker.docker_host), "the relay's node end is gone once the pull is done"
        finally:
            remove_stack(project.compose_project())


def _assert_tasks_on(project, nodes: set[str], revision: str, *, spread: bool = True) -> None:
    """`deploy.status` lists two app tasks on ``nodes`` (``spread``: one on each), each reporting ``revision``."""
    status = project.inv("deploy.status").stdout
    rows = _task_rows(status)
    assert [rev for _, rev in rows] == [revision[:12]] * 2, status
    placed = {name.split("@", 1)[1] for name, _ in rows}
    assert placed == nodes if spread else placed <= nodes, f"replicas on {'both' if spread else 'known'} engines: {status}"


def _moved(stderr: str, hostname: str) -> int:
    """Bytes the deploy said it moved to ``hostname`` through the registry ("..., 12345 bytes moved")."""
    for line in stderr.splitlines():
        if hostname in line and ": pulled" in line and "moved" in line:
            amount, unit = line.split(", ")[-1].split()[:2]
            return int(float(amount) * 1e6) if unit == "MB" else int(amount)
    raise AssertionError(f"no pull through the registry to {hostname}: {stderr}")


def _image_size(image: str) -> int:
    return int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True,
                              text=True, check=True).stdout)


def _published(container: str) -> list[str]:
    out = subprocess.run(["docker", "container", "port", container, "5000/tcp"], capture_output=True, text=True,
                         check=True).stdout
    return sorted({line.rsplit(":", 1)[0] for line in out.split()})


def _relays_left(docker_host: str) -> list[str]:
    return subprocess.run(["docker", "--host", docker_host, "ps", "-aq", "--filter",
                           "label=org.droplet-deploy.image-relay"], capture_output=True, text=True,
                          check=True).stdout.split()


def _engine_name() -> str:
    return subprocess.run(["docker", "info", "--format", "{{.Name}}"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _image_id(image: str, docker_host: str | None = None) -> str:
    return subprocess.run(["docker", *(["--host", docker_host] if docker_host else []), "image", "inspect",
                           "--format", "{{.Id}}", image], capture_output=True, text=True, check=True).stdout.strip()
