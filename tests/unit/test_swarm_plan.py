"""Swarm: the parsers of real engine output, the stack file planner and the pure convergence verdict."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from droplet_deploy.core.errors import PreflightFailed
from droplet_deploy.engines.swarm import stackfile
from droplet_deploy.engines.swarm.rollout import SwarmRelease, convergence, room_for_start_first
from droplet_deploy.engines.swarm.state import (
    StackState,
    parse_free_kb,
    parse_nodes,
    parse_services,
    parse_swarm_info,
    parse_tasks,
)

# Trimmed from `docker info`, `docker node ls`, `docker service inspect`, `docker inspect --type task` (20.10).
SWARM_INFO = ('{"NodeID":"bbgs4a","NodeAddr":"127.0.0.1","LocalNodeState":"active","ControlAvailable":true,'
              '"Error":"","Nodes":2,"Managers":1}')
NODES = (
    '{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"vm","ID":"n1","ManagerStatus":"Leader",'
    '"Self":true,"Status":"Ready","TLSStatus":"Ready"}\n'
    '{"Availability":"Drain","EngineVersion":"20.10.24","Hostname":"w1","ID":"n2","ManagerStatus":"",'
    '"Self":false,"Status":"Down","TLSStatus":"Ready"}\n'
)


def _service(name="shop_app", image="shop:new@sha256:abc", previous="shop:old", state="updating", labels=None):
    return {
        "ID": f"id-{name}",
        "Spec": {"Name": name, "Labels": labels or {}, "Mode": {"Replicated": {"Replicas": 2}},
                 "TaskTemplate": {"ContainerSpec": {"Image": image}}},
        "PreviousSpec": {"TaskTemplate": {"ContainerSpec": {"Image": previous}}} if previous else None,
        "UpdateStatus": {"State": state, "Message": "update in progress"} if state else None,
    }


def _task(tid, image, state="running", desired="running", err="", node="n1", ip="10.0.1.5", service="id-shop_app"):
    return {
        "ID": tid, "ServiceID": service, "Slot": 1, "NodeID": node, "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Image": image}},
        "Status": {"Timestamp": "2026-01-01T00:00:00Z", "State": state, "Message": state, "Err": err,
                   "ContainerStatus": {"ContainerID": f"c-{tid}"}},
        "NetworksAttachments": [{"Network": {"Spec": {"Name": "shop_default"}}, "Addresses": [f"{ip}/24"]}],
    }


def test_swarm_info_and_nodes_are_read_from_engine_output():
    info = parse_swarm_info(SWARM_INFO)
    assert (info.state, info.is_manager, info.nodes, info.node_addr) == ("active", True, 2, "127.0.0.1")
    assert parse_swarm_info('{"LocalNodeState":"inactive","NodeID":""}').state == "inactive"
    vm, w1 = parse_nodes(NODES)
    assert vm.schedulable and vm.is_self and vm.manager_status == "Leader"
    assert not w1.schedulable and (w1.status, w1.availability) == ("Down", "Drain")


def test_unreadable_engine_output_is_one_clear_error():
    with pytest.raises(PreflightFailed, match="cannot read the output of `docker info`"):
        parse_swarm_info("Error: permission denied")
    with pytest.raises(PreflightFailed, match="docker node ls"):
        parse_nodes("[1, 2]")


def test_services_drop_the_pinned_digest_and_keep_the_previous_image_and_labels():
    (svc,) = parse_services(json.dumps([_service(labels={stackfile.REVISION_LABEL: "abc"})]))
    assert (svc.name, svc.image, svc.previous_image, svc.replicas) == ("shop_app", "shop:new", "shop:old", 2)
    assert svc.update_state == "updating" and svc.labels[stackfile.REVISION_LABEL] == "abc"
    assert parse_services("") == []


def test_tasks_carry_node_states_image_container_and_overlay_address():
    (task,) = parse_tasks(json.dumps([_task("t1", "shop:new@sha256:abc")]))
    assert (task.node_id, task.image, task.container_id) == ("n1", "shop:new", "c-t1")
    assert task.address_on("shop_default") == "10.0.1.5" and task.running
    assert parse_free_kb("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                         "/dev/vda 263174212 24781872 81623716 24% /\n") == 81623716
    assert parse_free_kb("df: /nope: No such file or directory\n") is None


RELEASE = SwarmRelease(stack="shop", stack_file="stack.yml", image="shop:new", revision="b" * 40, replicas=2)


def _state(tasks, state="updating", image="shop:new"):
    services = parse_services(json.dumps([_service(image=image, state=state)]))
    return StackState("shop", {"app": services[0]}, {"app": parse_tasks(json.dumps(tasks))})


def test_convergence_waits_for_every_replica_on_the_new_image_and_no_old_task():
    half = _state([_task("a", "shop:new"), _task("b", "shop:old"), _task("c", "shop:new", state="starting")])
    verdict = convergence(half, RELEASE)
    assert not verdict.done and not verdict.stuck
    assert verdict.reason == "1/2 replicas updated, 1 starting (starting), 1 old task(s) still running"
    done = _state([_task("a", "shop:new"), _task("c", "shop:new"),
                   _task("b", "shop:old", state="shutdown", desired="shutdown")], state="completed")
    assert convergence(done, RELEASE).done
    assert not convergence(_state([_task("a", "shop:old")], image="shop:old"), RELEASE).done


def test_convergence_is_stuck_when_swarm_paused_or_no_node_can_take_the_task():
    paused = _state([_task("a", "shop:old"), _task("c", "shop:new", state="failed", desired="shutdown",
                                                   err="task: non-zero exit (1)")], state="paused")
    verdict = convergence(paused, RELEASE)
    assert verdict.stuck and "paused" in verdict.reason and "non-zero exit (1)" in verdict.reason
    pending = _state([_task("a", "shop:old"), _task("c", "shop:new", state="pending",
                                                    err="no suitable node (max replicas per node limit exceed)")])
    assert convergence(pending, RELEASE).stuck
    assert convergence(StackState("shop", {}, {}), RELEASE).reason == "service not created yet"


def test_start_first_needs_room_for_one_more_task():
    from dataclasses import replace

    assert room_for_start_first(replace(RELEASE, max_replicas_per_node=1), 2) is not None
    assert room_for_start_first(replace(RELEASE, max_replicas_per_node=2), 2) is None
    assert room_for_start_first(RELEASE, 1) is None


# --- the stack file ------------------------------------------------------------------------------------------------

COMPOSE = {
    "name": "shop",
    "services": {
        "app": {
            "image": "old", "build": {"context": "."}, "container_name": "shop-app", "expose": ["8000"],
            "environment": {"APP_ENV": "prod", "PRICE": "$$5"}, "command": None,
            "healthcheck": {"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/ready"], "interval": "5s"},
            "volumes": [{"type": "volume", "source": "app-data", "target": "/data", "volume": {}}],
            "networks": {"default": None}, "depends_on": {"db": {"condition": "service_started"}},
        },
        "proxy": {"image": "nginx", "ports": [{"mode": "ingress", "target": 80, "published": "8001"}],
                  "volumes": [{"type": "bind", "source": "/x/default.conf", "target": "/etc/nginx/conf.d/x",
                               "bind": {"create_host_path": True}}],
                  "command": ["nginx"], "networks": {"default": None}},
        "worker": {"image": "shop:worker", "deploy": {"replicas": 1}},
    },
    "volumes": {"app-data": {"name": "shop_app-data"}, "proxy-upstream": {"name": "shop_proxy-upstream"}},
    "networks": {"default": {"name": "shop_default", "ipam": {}}},
}

PLAN = stackfile.StackPlan(stack="shop", image="shop:abc", revision="abc", public_port=8001,
                           proxy_image="local/nginx:latest", proxy_config_file="swarm-proxy.conf")


def test_the_app_gets_the_release_image_replicas_start_first_and_the_revision_label():
    stack, notes = stackfile.render(COMPOSE, PLAN)
    app = stack["services"]["app"]
    assert app["image"] == "shop:abc"
    assert app["deploy"]["replicas"] == 2 and app["deploy"]["endpoint_mode"] == "dnsrr"
    assert app["deploy"]["update_config"]["order"] == "start-first"
    assert app["deploy"]["update_config"]["failure_action"] == "pause"
    assert app["deploy"]["labels"] == {stackfile.REVISION_LABEL: "abc"}
    assert not {"build", "container_name", "expose", "depends_on", "command"} & set(app)
    assert any("container_name" in n for n in notes) and any("build" in n for n in notes)
    assert app["environment"]["PRICE"] == "$$5", "compose's escaping is kept for stack deploy's interpolation"


def test_the_proxy_is_published_in_host_mode_on_a_manager_with_the_toolkit_config():
    stack, notes = stackfile.render(COMPOSE, PLAN)
    proxy = stack["services"]["proxy"]
    assert proxy["ports"] == [{"target": 80, "published": 8001, "protocol": "tcp", "mode": "host"}]
    assert proxy["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert "volumes" not in proxy and "command" not in proxy
    (config,) = proxy["configs"]
    assert stack["configs"] == {config["source"]: {"file": "swarm-proxy.conf"}}
    assert config["source"] == stackfile.proxy_config_name(PLAN)
    assert any(n.startswith("proxy:") for n in notes)
    assert "set $app_tasks tasks.app;" in stackfile.proxy_conf(PLAN)
    assert "resolver 127.0.0.11 valid=1s" in stackfile.proxy_conf(PLAN)


def test_volumes_and_networks_lose_compose_project_names_and_unused_volumes():
    stack, _ = stackfile.render(COMPOSE, PLAN)
    assert stack["volumes"] == {"app-data": None}
    # The stack's own networks take a one-off container (deploy.exec); an external one is left as it is.
    assert stack["networks"] == {"default": {"attachable": True}}
    external = {**COMPOSE, "networks": {"default": {"name": "shop_default"}, "edge": {"external": True}}}
    assert stackfile.render(external, PLAN)[0]["networks"] == {"default": {"attachable": True},
                                                               "edge": {"external": True}}
    assert stack["services"]["worker"] == {"image": "shop:worker", "deploy": {"replicas": 1}}


def test_resource_limits_are_written_as_the_stack_schema_takes_them():
    # `docker compose config --format json` gives cpus as a number; `docker stack deploy` refuses anything but a
    # string ("services.app.deploy.resources.limits.cpus must be a string").
    limited = {**COMPOSE, "services": {**COMPOSE["services"], "app": {
        **COMPOSE["services"]["app"],
        "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": "268435456"}, "reservations": {"cpus": 2}}}}}}
    resources = stackfile.render(limited, PLAN)[0]["services"]["app"]["deploy"]["resources"]
    assert resources == {"limits": {"cpus": "0.5", "memory": "268435456"}, "reservations": {"cpus": "2"}}


def test_the_health_check_is_the_apps_own_and_the_revision_gate_escaped_for_stack_deploy():
    stack, _ = stackfile.render(COMPOSE, PLAN)
    kind, line = stack["services"]["app"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert "curl -f http://127.0.0.1:8000/ready" in line
    unescaped = line.replace("$$", "$")
    assert "$" not in line.replace("$$", ""), "every $ is doubled: stack deploy would substitute $body"
    assert unescaped.index("curl -f") < unescaped.index("body="), "the app's own check runs first"
    assert stack["services"]["app"]["healthcheck"]["start_period"] == "60s"


def test_the_rendered_stack_is_valid_yaml_and_a_hostile_revision_stays_data(tmp_path):
    from dataclasses import replace

    marker = tmp_path / "ran"
    hostile = replace(PLAN, revision=f"x$(touch${{IFS}}{marker})';`touch${{IFS}}{marker}`",
                      health_path="/nothing-listens-here")
    compose = {"services": {"app": {"image": "x", "healthcheck": {"disable": True}}}}
    stack, _ = stackfile.render(compose, hostile)
    loaded = yaml.safe_load(stackfile.to_yaml(stack))
    assert loaded["services"]["app"]["deploy"]["labels"][stackfile.REVISION_LABEL] == hostile.revision
    line = loaded["services"]["app"]["healthcheck"]["test"][1].replace("$$", "$")  # what stack deploy hands on
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, "nothing answers: unhealthy"
    assert not marker.exists(), "the revision is data, never run"


def test_a_compose_file_without_the_app_or_a_bad_plan_is_refused():
    with pytest.raises(ValueError, match="no service 'web'"):
        stackfile.render(COMPOSE, stackfile.StackPlan(**{**PLAN.__dict__, "app_service": "web"}))
    with pytest.raises(ValueError, match="endpoint_mode"):
        stackfile.StackPlan(**{**PLAN.__dict__, "endpoint_mode": "ingress"})
    with pytest.raises(ValueError, match="replicas"):
        stackfile.StackPlan(**{**PLAN.__dict__, "replicas": 0})


def test_a_disabled_or_missing_own_check_leaves_only_the_gate():
    compose = {"services": {"app": {"image": "x", "healthcheck": {"disable": True}}}}
    stack, _ = stackfile.render(compose, PLAN)
    line = stack["services"]["app"]["healthcheck"]["test"][1]
    assert line.startswith("url=") and "&&" not in line.split("{", 1)[0]


@pytest.mark.parametrize("service", ["app", "proxy", "worker"])
def test_a_port_bound_to_one_address_is_refused_never_published_on_every_interface(service):
    compose = json.loads(json.dumps(COMPOSE))
    compose["services"][service]["ports"] = [{"mode": "ingress", "host_ip": "10.0.0.5", "target": 8000,
                                             "published": "8000", "protocol": "tcp"}]
    with pytest.raises(stackfile.Unsupported) as caught:
        stackfile.render(compose, PLAN)
    assert f"service {service} publishes port 8000 on 10.0.0.5 only" in str(caught.value)
    assert "DOCKER-USER" in caught.value.hint


def test_a_port_on_every_interface_is_published_as_before():
    compose = json.loads(json.dumps(COMPOSE))
    compose["services"]["worker"]["ports"] = [{"mode": "ingress", "host_ip": "0.0.0.0", "target": 9000,
                                              "published": "9000", "protocol": "tcp"}]
    stack, _ = stackfile.render(compose, PLAN)
    assert stack["services"]["worker"]["ports"] == [{"target": 9000, "published": 9000, "protocol": "tcp",
                                                     "mode": "ingress"}]
