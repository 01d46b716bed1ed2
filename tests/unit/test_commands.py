"""The pure builders render exact argv lists; the Target is the only place they become shell text."""

import shlex

from droplet_deploy.commands import compose, docker, files, git
from droplet_deploy.commands.compose import Compose
from droplet_deploy.transport.target import command_line

HOSTILE = "nginx; rm -rf / #$(touch /tmp/pwned)"


def test_build_carries_revision_as_label_and_build_arg():
    argv = docker.build(image="shop:abc123def456", revision="a" * 40, context=".", dockerfile="./Dockerfile",
                        build_args={"BASE_IMAGE": "python:3.12-slim"}, target="production", no_cache=True)
    assert argv == [
        "docker", "build", "--force-rm", "--file", "./Dockerfile", "--tag", "shop:abc123def456",
        "--label", f"org.opencontainers.image.revision={'a' * 40}",
        "--build-arg", "BASE_IMAGE=python:3.12-slim", "--build-arg", f"REVISION={'a' * 40}",
        "--target", "production", "--no-cache", ".",
    ]


def test_revision_build_arg_cannot_be_overridden_by_config():
    argv = docker.build(image="x:1", revision="good", context=".", dockerfile="Dockerfile",
                        build_args={"REVISION": "forged"})
    assert "REVISION=good" in argv and "REVISION=forged" not in argv


def test_compose_passes_variables_through_env_and_names_project_and_file():
    c = Compose("shop-test", "docker-compose.test.yml", ("docker", "compose"), {"APP_IMAGE": "shop:1"})
    assert c.up(["app"], no_deps=True, no_recreate=True, scale={"app": 2}) == [
        "env", "APP_IMAGE=shop:1", "docker", "compose", "--project-name", "shop-test",
        "--file", "docker-compose.test.yml", "up", "--detach", "--no-deps", "--no-recreate", "--scale", "app=2", "app",
    ]
    assert Compose("p", "f.yml", ("docker-compose",)).config() == [
        "docker-compose", "--project-name", "p", "--file", "f.yml", "config", "--quiet"]
    assert compose.version(("docker-compose",)) == ["docker-compose", "version", "--short"]


def test_hostile_values_stay_single_arguments_in_the_shell_line():
    argv = docker.exec_(HOSTILE, ["cat", HOSTILE])
    line = command_line(argv, cwd="/srv/my app; reboot")
    assert shlex.split(line) == ["cd", "/srv/my app; reboot", "&&", *argv]


def test_append_line_passes_values_as_positional_parameters():
    argv = files.append_line("/srv/state/history.jsonl", HOSTILE)
    assert argv[:2] == ["sh", "-c"]
    assert HOSTILE not in argv[2], "the script is constant; the value is a parameter"
    assert argv[-2:] == [HOSTILE, "/srv/state/history.jsonl"]


def test_run_once_has_no_network_and_is_removed():
    assert docker.run_once("img:1", ["-u"], entrypoint="id", user="0") == [
        "docker", "run", "--rm", "--network", "none", "--entrypoint", "id", "--user", "0", "img:1", "-u"]


def test_git_builders():
    assert git.head() == ["git", "rev-parse", "--verify", "HEAD"]
    assert git.archive("abc", "/tmp/x.tar.gz") == ["git", "archive", "--format=tar.gz", "-o", "/tmp/x.tar.gz", "abc"]
    assert docker.stop(["a", "b"], timeout=5) == ["docker", "stop", "--time", "5", "a", "b"]


def test_receive_lands_a_file_whole_with_its_mode_or_not_at_all(tmp_path):
    """The script SshTarget streams uploads into, run for real; a hostile name stays one path."""
    import subprocess

    path = tmp_path / "a b; rm -rf $HOME"
    payload = bytes(range(256)) * 300
    done = subprocess.run(files.receive(str(path), 0o640, len(payload)), input=payload, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == payload and path.stat().st_mode & 0o777 == 0o640

    # Input that ends early (an interrupted upload ends the same way): the old file stays, nothing half-written.
    short = subprocess.run(files.receive(str(path), 0o600, len(payload)), input=payload[:1000], capture_output=True)
    assert short.returncode == 1 and b"incomplete" in short.stderr
    assert path.read_bytes() == payload and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert subprocess.run(files.send(str(path)), capture_output=True).stdout == payload
