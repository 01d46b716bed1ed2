"""Swarm command builders: exact argv, user values kept whole and never read as options, scripts run for real."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from droplet_deploy.commands import swarm
from droplet_deploy.transport.target import command_line
from tests.support import swarm_commands as test_cmd
from tests.support.http import ScriptedServer

HOSTILE = "-x; rm -rf / #$(touch /tmp/pwned) `id` \"'"
NODE = ("docker", "--host", "ssh://deploy@worker 2")


def test_swarm_and_node_builders():
    assert swarm.swarm_info() == ["docker", "info", "--format", "{{json .Swarm}}"]
    assert test_cmd.swarm_init("127.0.0.1") == ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"]
    assert test_cmd.swarm_leave(force=True) == ["docker", "swarm", "leave", "--force"]
    assert test_cmd.swarm_leave(docker=NODE) == [*NODE, "swarm", "leave"]
    assert test_cmd.swarm_join_token() == ["docker", "swarm", "join-token", "--quiet", "worker"]
    assert test_cmd.swarm_join("SWMTKN-1-abc", "10.0.0.1:2377", docker=NODE) == [
        *NODE, "swarm", "join", "--token", "SWMTKN-1-abc", "--", "10.0.0.1:2377"]
    assert swarm.node_ls() == ["docker", "node", "ls", "--format", "{{json .}}"]
    assert test_cmd.node_inspect(["a", "b"]) == ["docker", "node", "inspect", "--", "a", "b"]
    with pytest.raises(ValueError, match="worker or a manager"):
        test_cmd.swarm_join_token("root")


def test_stack_and_service_builders():
    assert swarm.stack_deploy("/srv/app/stack.yml", "shop", prune=True) == [
        "docker", "stack", "deploy", "--compose-file", "/srv/app/stack.yml", "--resolve-image", "never",
        "--prune", "--", "shop"]
    assert swarm.stack_deploy("s.yml", "shop", with_registry_auth=True, resolve_image="always") == [
        "docker", "stack", "deploy", "--compose-file", "s.yml", "--resolve-image", "always",
        "--with-registry-auth", "--", "shop"]
    assert swarm.stack_services("shop") == [
        "docker", "service", "ls", "--filter", "label=com.docker.stack.namespace=shop", "--format", "{{json .}}"]
    assert swarm.service_tasks("shop_app", running_only=True) == [
        "docker", "service", "ps", "--quiet", "--no-trunc", "--filter", "desired-state=running", "--", "shop_app"]
    assert swarm.task_inspect(["t1", "t2"]) == ["docker", "inspect", "--type", "task", "--", "t1", "t2"]
    assert swarm.service_update_image("shop_app", "shop:abc", force=True) == [
        "docker", "service", "update", "--detach", "--no-resolve-image", "--image", "shop:abc", "--force",
        "--", "shop_app"]
    assert swarm.service_rollback("shop_app") == ["docker", "service", "rollback", "--detach", "--", "shop_app"]
    assert swarm.save(["shop:abc"]) == ["docker", "save", "--", "shop:abc"]
    assert swarm.load(NODE) == [*NODE, "load", "--quiet"]
    assert swarm.image_id("shop:abc", NODE) == [*NODE, "image", "inspect", "--format", "{{.Id}}", "--", "shop:abc"]
    with pytest.raises(ValueError, match="resolve_image"):
        swarm.stack_deploy("s.yml", "shop", resolve_image="sometimes")


@pytest.mark.parametrize("argv", [
    swarm.stack_deploy(HOSTILE, HOSTILE), test_cmd.stack_rm(HOSTILE), swarm.service_inspect([HOSTILE]),
    swarm.service_tasks(HOSTILE), swarm.task_inspect([HOSTILE]), swarm.service_update_image(HOSTILE, HOSTILE),
    swarm.service_rollback(HOSTILE), test_cmd.service_rm([HOSTILE]), test_cmd.node_inspect([HOSTILE]),
    swarm.image_id(HOSTILE), swarm.save([HOSTILE]), test_cmd.swarm_join(HOSTILE, HOSTILE), test_cmd.node_rm([HOSTILE]),
])
def test_user_values_are_single_words_after_the_end_of_options(argv):
    assert shlex.split(command_line(argv)) == argv, "the shell line splits back into the same argv"
    positional = argv[argv.index("--") + 1:]
    assert HOSTILE in positional, "a name starting with '-' comes after '--', where it cannot be an option"


def test_scripts_are_constant_and_take_values_as_parameters():
    for argv in (swarm.save_into(HOSTILE, ["docker", "load"]), swarm.exec_fetch(HOSTILE, HOSTILE)):
        script = argv[argv.index("-c") + 1]
        assert HOSTILE not in script
        assert HOSTILE in argv


def test_save_into_pipes_the_save_into_the_receiving_command(tmp_path):
    """Run for real with a stand-in ``docker`` on PATH (the engine is not what this checks: the pipe is)."""
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "save --" ] && printf "tar of %s" "$3"\n')
    fake.chmod(0o755)
    received = tmp_path / "received"
    argv = swarm.save_into(HOSTILE, ["sh", "-c", 'cat > "$1"', "load", str(received)])
    done = subprocess.run(argv, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert received.read_text() == f"tar of {HOSTILE}"


def test_save_into_needs_a_receiver():
    with pytest.raises(ValueError, match="loads the image"):
        swarm.save_into("shop:1", [])


def _fetch_script(url: str) -> list[str]:
    """The part of exec_fetch that runs inside the container, run here instead (same shell script)."""
    argv = swarm.exec_fetch("proxy", url, timeout=2)
    return argv[argv.index("sh"):]


def test_fetch_prints_the_body_of_any_status():
    server = ScriptedServer()
    try:
        server.answer(503, status="unhealthy", revision="abc")
        done = subprocess.run(_fetch_script(server.url), capture_output=True, text=True, timeout=30)
        assert json.loads(done.stdout) == {"status": "unhealthy", "revision": "abc"}
    finally:
        server.close()


@pytest.mark.parametrize(("status", "body", "healthy"), [
    (200, {"status": "healthy", "revision": "abc123"}, True),
    (200, {"revision": "abc123", "status": "healthy", "checks": {}}, True),
    (200, {"status": "healthy", "revision": "abc1234"}, False),
    (200, {"status": "healthy", "revision": "0000000stale"}, False),
    (503, {"status": "unhealthy", "revision": "abc123"}, False),
    (200, {"status": "healthy"}, False),
])
def test_revision_gate_passes_only_healthy_with_the_expected_revision(status, body, healthy):
    server = ScriptedServer()
    try:
        server.status, server.body = status, json.dumps(body, indent=2)  # spacing must not matter
        kind, line = swarm.revision_gate(server.url, "abc123")
        assert kind == "CMD-SHELL"
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30)
        assert (done.returncode == 0) is healthy, done.stderr
    finally:
        server.close()


def test_revision_gate_runs_the_apps_own_check_first_and_keeps_hostile_values_quoted(tmp_path):
    server = ScriptedServer()
    marker = tmp_path / "pwned"
    revision = f"x$(touch${{IFS}}{marker})`id`;'*"  # no whitespace: the gate compares the body without any
    try:
        server.answer(200, status="healthy", revision=revision)
        _, line = swarm.revision_gate(server.url, revision, before="exit 4")
        assert subprocess.run(["sh", "-c", line], timeout=30).returncode == 4
        _, line = swarm.revision_gate(server.url, revision, before="true")
        assert subprocess.run(["sh", "-c", line], timeout=30).returncode == 0
        assert not marker.exists()
    finally:
        server.close()


def test_day_two_builders_keep_user_values_whole():
    assert swarm.service_scale("shop_app", 0, remember=2) == [
        "docker", "service", "update", "--detach", "--replicas", "0",
        "--label-add", f"{swarm.STOPPED_LABEL}=2", "--", "shop_app"]
    assert swarm.service_scale(HOSTILE, 2)[-4:] == ["--label-rm", swarm.STOPPED_LABEL, "--", HOSTILE]
    with pytest.raises(ValueError, match="0 or more"):
        swarm.service_scale("shop_app", -1)
    assert swarm.service_logs("shop_app", since="10m", tail=5, follow=True) == [
        "docker", "service", "logs", "--since", "10m", "--tail", "5", "--follow", "--", "shop_app"]
    assert swarm.network_inspect([HOSTILE]) == ["docker", "network", "inspect", "--", HOSTILE]
    assert swarm.one_off(HOSTILE, ["sh", "-c", HOSTILE], env_file="/s/.exec.env", network="shop_default",
                         volumes=["shop_app-data:/data"], interactive=True) == [
        "docker", "run", "--rm", "--interactive", "--tty", "--env-file", "/s/.exec.env", "--network",
        "shop_default", "--volume", "shop_app-data:/data", "--", HOSTILE, "sh", "-c", HOSTILE]
    assert swarm.one_off("shop:abc", ["true"]) == ["docker", "run", "--rm", "--", "shop:abc", "true"]
