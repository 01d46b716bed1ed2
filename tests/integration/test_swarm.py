"""The Swarm rollout engine on a real swarm: this engine as a single-node manager (initialised and left by the
suite when it was in none), and, marked ``swarm_nodes``, a second engine in a container joined as a worker.

Each test deploys the reference app as a stack (2 replicas, ``endpoint_mode: dnsrr``, start-first updates, a
front nginx published in ``host`` mode: this kernel has no IPVS for the ingress mesh or VIPs) and drives
``deploy.swarm.rollout`` directly, under the load client where the issue asks for zero failed requests.
"""

from __future__ import annotations

import subprocess

import pytest

from deploy.errors import RolloutFailed
from deploy.swarm.distribute import ensure_everywhere
from deploy.swarm.rollout import rollback, rollout, status
from tests.conftest import BASE_IMAGE, PROXY_IMAGE
from tests.support import releases
from tests.support.load import Load, Report
from tests.support.swarm import SwarmApp, single_node_swarm, worker_node

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


def _under_load(load: Load, action):
    start = load.now()
    outcome = action()
    load.wait(SETTLE)
    report = load.report(start)
    assert report.requests >= 0.8 * RATE * report.duration, f"the load fell behind: {report.describe()}"
    return outcome, report


def _revisions_of(proofs) -> list[str | None]:
    return [p.verdict.revision for p in proofs]


def _assert_only(report: Report, revision: str, *, allowed: set[str]) -> None:
    assert report.failed == 0, report.describe()
    served = {rev for _, rev in report.revisions()}
    assert served <= allowed, f"unexpected revisions served: {served - allowed}"
    assert report.last_revision() == revision


def test_deploy_redeploy_under_load_and_stack_wide_rollback_lose_no_request(app):
    first = releases.slow_boot(app.project, BOOT)
    kept = app.release(first)
    report = rollout(app.target, kept, timeout=120)
    assert _revisions_of(report.proofs) == [first, first]
    assert len({p.address for p in report.proofs}) == 2, "two tasks, each proven on its own address"

    with Load(app.url + "/api/health", rate=RATE, max_seconds=300) as load:
        second = releases.one_line_change(app.project, "second")
        new = app.release(second)  # built before the load step: the build is not the rollout
        deployed, step = _under_load(load, lambda: rollout(app.target, new, timeout=120))
        _assert_only(step, second, allowed={first, second})
        assert deployed.previous_image == kept.image
        assert _revisions_of(deployed.proofs) == [second, second]
        assert all(p.verdict.ok for p in status(app.target, app.stack, new))

        kept_id = _image_id(kept.image)
        back, step = _under_load(load, lambda: rollback(app.target, kept, timeout=120))
        _assert_only(step, first, allowed={first, second})
        assert _revisions_of(back.proofs) == [first, first]
        assert _image_id(kept.image) == kept_id, "the kept image served again, nothing rebuilt"

    assert load.report().failed == 0, load.report().describe()
    rows = status(app.target, app.stack, kept)
    assert [(r.node, r.verdict.revision) for r in rows] == [(rows[0].node, first)] * 2


@pytest.mark.parametrize("bad", [releases.wrong_revision, releases.unhealthy], ids=["wrong-revision", "unhealthy"])
def test_a_bad_release_stays_out_and_the_previous_one_serves_every_task(app, bad):
    good = app.project.head()
    rollout(app.target, app.release(good), timeout=120)

    with Load(app.url + "/api/health", rate=RATE, max_seconds=300) as load:
        broken = app.release(bad(app.project))
        with pytest.raises(RolloutFailed) as failed:
            _under_load(load, lambda: rollout(app.target, broken, timeout=BAD_TIMEOUT))
        load.wait(SETTLE)
    message = str(failed.value)
    assert "rolled back" in message and f"still serving revision {good[:12]} on 2/2 tasks" in message, message
    whole = load.report()
    _assert_only(whole, good, allowed={good})
    rows = status(app.target, app.stack, broken)
    assert _revisions_of(rows) == [good, good]
    assert {r.image for r in rows} == {app.image(good)}


def test_a_stack_that_is_not_deployed_cannot_be_rolled_back(app):
    from deploy.errors import RollbackImpossible

    release = app.release(app.project.head())
    with pytest.raises(RollbackImpossible, match="not deployed"):
        rollback(app.target, release)


@pytest.mark.swarm_nodes
def test_two_engines_get_the_image_and_every_replica_reports_the_new_revision(project, manager):
    with worker_node(manager) as worker:
        if isinstance(worker, str):
            pytest.skip(f"a second engine cannot run here: {worker}")
        # 3 replicas, at most 2 per node: both engines always run one, and start-first has room for its new task.
        app = SwarmApp(project, base_image=BASE_IMAGE, proxy_image=PROXY_IMAGE, replicas=3, max_replicas_per_node=2)
        try:
            first = app.project.head()
            report = rollout(app.target, app.release(first), nodes=[worker.engine], timeout=180)
            assert _revisions_of(report.proofs) == [first] * 3
            nodes = {p.node for p in report.proofs}
            assert len(nodes) == 2 and worker.container in nodes, f"replicas on both engines: {nodes}"

            with Load(app.url + "/api/health", rate=RATE, max_seconds=300) as load:
                second = releases.one_line_change(app.project, "second")
                new = app.release(second)
                deployed, step = _under_load(load, lambda: rollout(app.target, new, nodes=[worker.engine],
                                                                   timeout=180))
            _assert_only(step, second, allowed={first, second})
            assert _revisions_of(deployed.proofs) == [second] * 3
            assert {p.node for p in deployed.proofs} == nodes
            delivered = ensure_everywhere(app.target, new.image, [worker.engine])
            assert [d.sent for d in delivered] == [False], "already on the worker, with the manager's image ID"
        finally:
            app.remove()


def _image_id(image: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True,
                          text=True, check=True).stdout.strip()
