"""The swarm backend's pure parts: which services a restart updates, how a task reads as a container, how a node
entry is reached, and the engine setting."""

from __future__ import annotations

import pytest

from deploy.backend.swarm import node_engine, restarted, task_container
from deploy.config import DEFAULTS, load
from deploy.errors import ConfigError
from deploy.restart import Plan
from deploy.swarm.stackfile import REVISION_LABEL
from deploy.swarm.state import Service, StackState, Task

SERVICES = ["app", "proxy", "worker"]


@pytest.mark.parametrize("plan, expected", [
    (Plan(roll=True), ["app"]),
    (Plan(roll=True, one_by_one=("worker",)), ["app", "worker"]),
    (Plan(hard=True), SERVICES),
    (Plan(hard=True, services=("proxy",)), ["proxy"]),
    (Plan(), []),
])
def test_a_restart_updates_the_services_its_plan_names(plan, expected):
    assert restarted(plan, "app", SERVICES) == expected


def _task(task_id: str, image: str, *, slot: int = 1, state: str = "running") -> Task:
    return Task(id=task_id, service_id="s1", slot=slot, node_id="n1", desired_state="running", state=state,
                message="", error="", image=image, container_id=f"c-{task_id}", addresses={"shop_default": "10.0.0.5"})


def _state(image: str, revision: str) -> StackState:
    service = Service("s1", "shop_app", image, 2, None, "", None, {REVISION_LABEL: revision})
    return StackState("shop", {"app": service}, {})


def test_a_task_shows_where_it_runs_and_the_revision_it_reported():
    state = _state("shop:abc", "abc123")
    row = task_container("app", _task("t1", "shop:abc"), state, {"n1": "droplet-1"}, {"t1": "fff999"})
    assert (row.name, row.revision, row.state, row.running) == ("app.1@droplet-1", "fff999", "running", True)


def test_an_unasked_task_has_its_service_revision_only_when_it_runs_the_service_image():
    state = _state("shop:new", "new123")
    current = task_container("app", _task("t1", "shop:new"), state, {}, {})
    old = task_container("app", _task("t2", "shop:old", slot=2, state="starting"), state, {}, {})
    assert current.revision == "new123"
    assert old.revision is None and not old.running


def test_a_node_entry_is_reached_by_its_docker_host():
    node = node_engine("ssh://deploy@worker-1:2222")
    assert node.hostname == "worker-1"
    assert node.docker == ("docker", "--host", "ssh://deploy@worker-1:2222")


def _raw(**test):
    return {**DEFAULTS, "app_name": "shop", "environments": {"test": {"public_port": 8001, **test}}}


def test_engine_defaults_to_compose_and_refuses_others(root):
    assert load(_raw(), "test", root=root).engine == "compose"
    assert load(_raw(engine="swarm"), "test", root=root).engine == "swarm"
    with pytest.raises(ConfigError, match="is not an engine"):
        load(_raw(engine="kubernetes"), "test", root=root)
