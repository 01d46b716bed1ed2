"""The swarm backend's pure parts: which services a restart updates, how a task reads as a container, how a node
entry is reached, and the engine setting."""

from __future__ import annotations

import dataclasses
import json

import pytest

from droplet_deploy.commands.swarm import STOPPED_LABEL
from droplet_deploy.core.config import load
from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.core.errors import ConfigError, UsageError
from droplet_deploy.engines.base import RestartPlan
from droplet_deploy.engines.swarm.day_two import restart_note, restarted, scaling, settled
from droplet_deploy.engines.swarm.distribute import node_engine
from droplet_deploy.engines.swarm.one_off import env_file_text, planned_app
from droplet_deploy.engines.swarm.snapshot import stopped_containers, task_container
from droplet_deploy.engines.swarm.stackfile import REVISION_LABEL
from droplet_deploy.engines.swarm.state import Service, StackState, Task, parse_attachable, parse_services
from droplet_deploy.engines.swarm.state_files import done_with, exec_env_name

SERVICES = ["app", "proxy", "worker"]


@pytest.mark.parametrize("plan, expected", [
    (RestartPlan(roll=True), ["app"]),
    (RestartPlan(roll=True, one_by_one=("worker",)), ["app", "worker"]),
    (RestartPlan(hard=True), SERVICES),
    (RestartPlan(hard=True, services=("proxy",)), ["proxy"]),
    (RestartPlan(), []),
])
def test_a_restart_updates_the_services_its_plan_names(plan, expected):
    assert restarted(plan, "app", SERVICES) == expected


def test_a_restart_announces_each_service_as_swarm_replaces_it():
    from droplet_deploy.engines.snapshot import Container

    app = Container(id="c1", name="app.1@droplet-1", service="app", image="shop:abc123", revision="abc123" * 7,
                    state="running", health=None, started_at="", number=1, addresses=())
    rolled = restart_note("app", "proxy", "shop", "app", app)
    assert rolled.startswith("app: a rolling update of shop_app (`docker service update --force`), task by task")
    assert "shop:abc123 (revision abc123abc123)" in rolled and "beside the old one (start-first)" in rolled
    assert "the environment the service was deployed with" in rolled and "env file" not in rolled
    assert "stop-first" in restart_note("app", "proxy", "shop", "proxy", app)
    assert restart_note("app", "proxy", "shop", "worker", app) == \
        "worker: a forced rolling update of shop_worker, task by task as its update_config says"


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


def _service(name: str, replicas: int | None, **labels: str) -> Service:
    return Service(f"id-{name}", f"shop_{name}", "shop:abc", replicas, None, "", None,
                   {REVISION_LABEL: "abc123", **labels})


def test_stop_scales_to_zero_remembering_the_count_and_start_gives_it_back():
    app, proxy = _service("app", 2), _service("proxy", 1)
    assert scaling("stop", [app, proxy], 2) == [("shop_app", 0, 2), ("shop_proxy", 0, 1)]
    stopped = [_service("app", 0, **{STOPPED_LABEL: "2"}), _service("proxy", 0, **{STOPPED_LABEL: "1"})]
    assert scaling("stop", stopped, 2) == [], "already stopped: nothing to do, the kept counts stay"
    assert scaling("start", stopped, 2) == [("shop_app", 2, None), ("shop_proxy", 1, None)]
    assert scaling("start", [app, _service("worker", 0, **{STOPPED_LABEL: "x"})], 3) == [("shop_worker", 3, None)]
    with pytest.raises(UsageError, match="shop_agent is a global service"):
        scaling("stop", [_service("agent", None)], 2)


def test_a_stopped_service_reads_as_stopped_and_settles_when_its_tasks_are_gone():
    service = _service("app", 0, **{STOPPED_LABEL: "2"})
    gone = dataclasses.replace(_task("t1", "shop:abc", state="shutdown"), desired_state="shutdown")
    state = StackState("shop", {"app": service}, {"app": [gone]})
    [row] = stopped_containers(state, ("app", "proxy"))
    assert (row.name, row.revision, row.running, row.service) == ("app (0/2 replicas)", "abc123", False, "app")
    assert settled("stop", state, "app")
    running = StackState("shop", {"app": _service("app", 1)}, {"app": [_task("t2", "shop:abc")]})
    assert settled("start", running, "app") and not settled("stop", running, "app")
    assert stopped_containers(running, ("app",)) == []


def test_the_one_off_env_file_leaves_out_values_that_span_lines():
    text, skipped = env_file_text(["APP_ENV=test", "KEY=a=b #c", "PEM=-----BEGIN\nabc"])
    assert text == "APP_ENV=test\nKEY=a=b #c\n" and skipped == ["PEM"]


def test_a_service_spec_gives_the_one_off_its_env_volumes_and_networks():
    spec = {"ID": "s1", "Spec": {"Name": "shop_app", "Labels": {}, "TaskTemplate": {
        "ContainerSpec": {"Image": "shop:abc@sha256:0", "Env": ["APP_ENV=test"], "Mounts": [
            {"Type": "volume", "Source": "shop_app-data", "Target": "/data"},
            {"Type": "volume", "Source": "shop_ro", "Target": "/ro", "ReadOnly": True},
            {"Type": "bind", "Source": "/etc", "Target": "/host-etc"}]},
        "Networks": [{"Target": "net1"}]}, "Mode": {"Replicated": {"Replicas": 2}}}}
    [service] = parse_services(json.dumps([spec]))
    assert (service.image, service.env, service.network_ids) == ("shop:abc", ("APP_ENV=test",), ("net1",))
    assert service.volumes == ("shop_app-data:/data", "shop_ro:/ro:ro")
    networks = [{"Name": "shop_default", "Attachable": True}, {"Name": "ingress", "Attachable": False}]
    assert parse_attachable(json.dumps(networks)) == ["shop_default"]


def test_before_the_first_deploy_a_one_off_gets_what_the_stack_file_gives_every_task():
    stack = {"services": {"app": {
        "environment": {"APP_ENV": "prod", "PRICE": "$$5", "UNSET": None},
        "volumes": [{"type": "volume", "source": "app-data", "target": "/data"},
                    {"type": "volume", "source": "shared", "target": "/shared", "read_only": True},
                    {"type": "bind", "source": "/etc/x", "target": "/x"}]}},
        "volumes": {"app-data": None, "shared": {"external": True}}}
    app = planned_app(stack, "shop", "app", "shop:abc")
    assert (app.name, app.image, app.network_ids) == ("shop_app", "shop:abc", ())
    assert app.env == ("APP_ENV=prod", "PRICE=$5"), "stack deploy's $$ escaping undone, unset values left out"
    assert app.volumes == ("shop_app-data:/data", "shared:/shared:ro")
    listed = planned_app({"services": {"app": {"environment": ["A=1", "B=x=y"]}}}, "shop", "app", "shop:abc")
    assert listed.env == ("A=1", "B=x=y") and listed.volumes == ()


def test_the_stack_files_of_releases_not_in_service_and_day_old_one_off_env_files_are_done_with():
    now = 1_800_000_000 * 10**9
    hour = 3600 * 10**9
    names = ["shop-aaaaaaaaaaaa.yml", "shop-bbbbbbbbbbbb.yml", "shop-cccccccccccc-dirty.yml", "shop-proxy.conf",
             "shop-beta-aaaaaaaaaaaa.yml", "shop-beta-proxy.conf", "notes.yml",
             exec_env_name(41, now - 25 * hour), exec_env_name(42, now - hour), ".exec-x.env"]
    assert done_with(names, "shop", "bbbbbbbbbbbb", now) == [
        exec_env_name(41, now - 25 * hour), "shop-aaaaaaaaaaaa.yml", "shop-cccccccccccc-dirty.yml"]
    assert done_with(names, "shop-beta", "bbbbbbbbbbbb", now) == [
        exec_env_name(41, now - 25 * hour), "shop-beta-aaaaaaaaaaaa.yml"]
