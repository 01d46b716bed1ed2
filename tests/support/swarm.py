"""A real Swarm for the tests: this engine as a single-node manager, and optionally a second engine in a
container joined as a worker.

Other people's tests use the same engine at the same time. A swarm does not disturb their compose containers,
but the rules are strict: the swarm is initialised only when the engine is in none, and left afterwards only when
these fixtures initialised it; every stack, node and container made here is removed by whoever made it.

The second engine: a Debian image with docker.io built offline (mmdebstrap + ``docker import``, as
scripts/bootstrap builds the base images) running dockerd in a container. Where this machine is itself a
container its capability bounding set may lack a capability (CAP_SYS_RESOURCE here), and ``--privileged`` then
fails ("unable to apply caps"): the node gets every capability the machine has instead, and mounts its cgroup
hierarchies read-write itself (Docker mounts them read-only in an unprivileged container). Its engine also
listens on a socket in a directory of this machine, so the toolkit reaches it the way it reaches a worker on a real
cluster: by a DOCKER_HOST in ``swarm_nodes`` (``unix:///tmp/swnode-.../docker.sock`` here, ``ssh://...`` there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from droplet_deploy.commands import swarm as cmd
from tests.support import swarm_commands as test_cmd

NODE_IMAGE = os.environ.get("TEST_SWARM_NODE_IMAGE", "local/swarm-node:latest")
NODE_PACKAGES = "docker.io,iptables,ca-certificates,procps"
GWBRIDGE = "docker_gwbridge"
OUTSIDE = "/outside"  # where the node container sees the directory holding the socket this machine reaches

# Runs as the node container's command: cgroup hierarchies read-write (see the module note), then the engine,
# its containers under a cgroup of their own so they never share a path with the outer engine's.
_NODE_INIT = (
    'for d in /sys/fs/cgroup/*; do [ -d "$d" ] && [ ! -L "$d" ] || continue; n="${d##*/}"; o="$n"; '
    '[ "$n" = systemd ] && o=none,name=systemd; '
    'if grep -q " $d cgroup ro," /proc/mounts; then umount "$d" && mount -t cgroup -o "$o" cgroup "$d"; fi; '
    'done; exec dockerd --cgroup-parent "/swarm-node-$(hostname)" '
    f'-H unix:///var/run/docker.sock -H unix://{OUTSIDE}/docker.sock'
)


def _docker(*args: str, check: bool = True, timeout: float = 120, input: bytes | None = None):
    result = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    return result.stdout.decode(errors="replace")


def swarm_state() -> dict:
    return json.loads(_docker("info", "--format", "{{json .Swarm}}"))


def advertise_address() -> str:
    """The default bridge's own address: the host reaches it, and so does an engine in a container (a node
    joining). IPAM's Gateway field names it on some engines and is empty on others (Debian's 20.10 here), so the
    address of the bridge's interface (docker0) is read when it is empty. 127.0.0.1 works for a single node only;
    TEST_SWARM_ADVERTISE_ADDR overrides."""
    chosen = os.environ.get("TEST_SWARM_ADVERTISE_ADDR")
    if chosen:
        return chosen
    out = _docker("network", "inspect", "bridge", "--format",
                  '{{range .IPAM.Config}}{{.Gateway}} {{end}}|{{index .Options "com.docker.network.bridge.name"}}',
                  check=False).strip()
    gateways, _, interface = out.partition("|")
    if gateways.split():
        return gateways.split()[0]
    return interface_address(interface.strip() or "docker0") or "127.0.0.1"


def interface_address(interface: str) -> str | None:
    """The first IPv4 address of a network interface of this machine (``ip -4 -o addr show``)."""
    try:
        shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in shown.stdout.splitlines():
        words = line.split()
        if "inet" in words:
            return words[words.index("inet") + 1].split("/")[0]
    return None


@dataclass(frozen=True)
class Manager:
    address: str
    initialised_here: bool


@contextlib.contextmanager
def single_node_swarm() -> Iterator[Manager]:
    """This engine as a swarm manager for the duration; left only if it was initialised here."""
    state = swarm_state()
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise RuntimeError("this engine is a swarm worker: the swarm tests need a manager")
        yield Manager(str(state.get("NodeAddr") or "127.0.0.1"), initialised_here=False)
        return
    address = advertise_address()
    had_gwbridge = _network_exists(GWBRIDGE)
    subprocess.run(test_cmd.swarm_init(address), check=True, capture_output=True, timeout=120)
    try:
        yield Manager(address, initialised_here=True)
    finally:
        subprocess.run(test_cmd.swarm_leave(force=True), capture_output=True, timeout=120)
        # Leaving keeps the bridge `swarm init` created for the tasks' outside traffic; it was not there before.
        if not had_gwbridge:
            subprocess.run(["docker", "network", "rm", GWBRIDGE], capture_output=True, timeout=60)


def _network_exists(name: str) -> bool:
    return subprocess.run(["docker", "network", "inspect", name], capture_output=True).returncode == 0


def remove_stack(stack: str, timeout: float = 60) -> None:
    """``docker stack rm`` and wait until its services, containers and networks are gone."""
    subprocess.run(test_cmd.stack_rm(stack), capture_output=True, timeout=120)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _docker("service", "ls", "-q", "--filter", f"label={cmd.STACK_LABEL}={stack}", check=False).split()
        left += _docker("ps", "-aq", "--filter", f"label={cmd.STACK_LABEL}={stack}", check=False).split()
        left += _docker("network", "ls", "-q", "--filter", f"label={cmd.STACK_LABEL}={stack}", check=False).split()
        if not left:
            return
        time.sleep(0.5)


# --- a second engine ----------------------------------------------------------------------------------------------

def build_node_image() -> str | None:
    """Build NODE_IMAGE offline unless it exists; None when built, else why it could not be."""
    if subprocess.run(["docker", "image", "inspect", NODE_IMAGE], capture_output=True).returncode == 0:
        return None
    if not shutil.which("mmdebstrap"):
        return "mmdebstrap is not installed (apt-get install mmdebstrap)"
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp, "node.tar")
        built = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={NODE_PACKAGES}", "--mode=root",
                                "bookworm", str(tar)], capture_output=True, text=True, timeout=900)
        if built.returncode != 0:
            return f"mmdebstrap failed: {built.stderr.strip()[-300:]}"
        _docker("import", "--change", 'CMD ["dockerd"]', str(tar), NODE_IMAGE, timeout=300)
    return None


@dataclass
class WorkerNode:
    container: str
    node_id: str
    socket_dir: str

    @property
    def docker_host(self) -> str:
        """The node's engine as a ``swarm_nodes`` entry: a DOCKER_HOST this machine's docker CLI reaches."""
        return f"unix://{self.socket_dir}/docker.sock"


def _start_node_container(name: str, socket_dir: str, shared: tuple[str, ...] = ()) -> str | None:
    """Start the engine container; None when it runs, else what failed (privileged first, then the fallback).
    ``shared``: directories of this machine the node sees at the same path (a compose file's bind mounts)."""
    common = ["--detach", "--name", name, "--hostname", name, "--volume", "/var/lib/docker",
              "--volume", f"{socket_dir}:{OUTSIDE}", "--label", "org.droplet-deploy.test=swarm-node"]
    for path in shared:
        common += ["--volume", f"{path}:{path}"]
    errors = []
    for caps in (["--privileged"],
                 ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                  "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined"]):
        started = subprocess.run(["docker", "run", *common, *caps, NODE_IMAGE, "sh", "-c", _NODE_INIT],
                                 capture_output=True, text=True, timeout=120)
        if started.returncode == 0:
            return None
        errors.append(f"{caps[0]}: {started.stderr.strip().splitlines()[0] if started.stderr.strip() else '?'}")
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
    return "; ".join(errors)


def _engine_answers(name: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "exec", name, "docker", "info"], capture_output=True).returncode == 0:
            return True
        time.sleep(0.5)
    return False


@contextlib.contextmanager
def worker_node(manager: Manager) -> Iterator[WorkerNode | str]:
    """A second engine joined to the swarm as a worker; yields why not (a string) when it cannot run here."""
    if manager.address.startswith("127."):
        yield f"the swarm advertises {manager.address}: an engine in a container cannot reach the manager there"
        return
    reason = build_node_image()
    if reason:
        yield reason
        return
    name = f"swnode-{uuid.uuid4().hex[:8]}"
    socket_dir = tempfile.mkdtemp(prefix=f"{name}-")  # short: a unix socket's path has a 107-byte limit
    reason = _start_node_container(name, socket_dir)
    if reason:
        shutil.rmtree(socket_dir, ignore_errors=True)
        yield f"the node container does not start: {reason}"
        return
    node_id = ""
    try:
        if not _engine_answers(name):
            yield f"dockerd in {name} never answered: {_docker('logs', '--tail', '5', name, check=False)}"
            return
        token = _docker(*test_cmd.swarm_join_token()[1:]).strip()
        _docker("exec", name, *test_cmd.swarm_join(token, f"{manager.address}:{test_cmd.SWARM_PORT}"))
        node_id = _docker("exec", name, "docker", "info", "--format", "{{.Swarm.NodeID}}").strip()
        yield WorkerNode(name, node_id, socket_dir)
    finally:
        subprocess.run(["docker", "exec", name, *test_cmd.swarm_leave(force=True)], capture_output=True, timeout=60)
        if node_id:
            _wait_node_down(node_id)
            subprocess.run(test_cmd.node_rm([node_id], force=True), capture_output=True, timeout=60)
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=120)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _wait_node_down(node_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _docker("node", "inspect", "--format", "{{.Status.State}}", node_id, check=False).strip()
        if status != "ready":
            return
        time.sleep(0.5)


# --- the reference app as a stack ---------------------------------------------------------------------------------

class SwarmApp:
    """The reference app of a project clone (``tests.conftest.Project``) as a stack: builds its image per
    revision as the tests do (the revision build arg), plans the stack file from docker-compose.test.yml and
    hands the rollout engine a ``SwarmRelease``."""

    def __init__(self, project, *, base_image: str, proxy_image: str, replicas: int = 2,
                 max_replicas_per_node: int | None = None, health_interval: float = 1.0, stack: str | None = None,
                 port: int | None = None):
        from invoke import Context

        from droplet_deploy.transport.target import LocalTarget

        self.project = project
        self.stack = stack or f"{project.name}-swarm"
        self.port = port or project.port
        self.base_image = base_image
        self.proxy_image = proxy_image
        self.replicas = replicas
        self.max_replicas_per_node = max_replicas_per_node
        self.health_interval = health_interval
        self.target = LocalTarget(Context(), str(project.path), echo=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def image(self, revision: str) -> str:
        return f"{self.project.name}:{revision[:12]}"

    def build(self, revision: str) -> str:
        from droplet_deploy.commands import docker as docker_cmd

        image = self.image(revision)
        argv = docker_cmd.build(image=image, revision=revision, context=".", dockerfile="./Dockerfile",
                                build_args={"BASE_IMAGE": self.base_image})
        subprocess.run(argv, cwd=self.project.path, check=True, capture_output=True, timeout=900)
        return image

    def compose_model(self, image: str) -> dict:
        env = {**os.environ, "APP_IMAGE": image, "PROXY_IMAGE": self.proxy_image,
               "PUBLIC_PORT": str(self.port)}
        out = subprocess.run(["docker", "compose", "--project-name", self.stack, "--file", "docker-compose.test.yml",
                              "config", "--format", "json"], cwd=self.project.path, env=env, check=True,
                             capture_output=True, text=True, timeout=120).stdout
        return json.loads(out)

    def release(self, revision: str, *, build: bool = True, adjust=None):
        """Build (unless told not to), write the stack file of ``revision`` beside the clone, return the release.
        ``adjust(stack, compose)`` may change the planned stack file first (the benchmark's plain variants)."""
        from droplet_deploy.engines.swarm import stackfile
        from droplet_deploy.engines.swarm.rollout import SwarmRelease

        image = self.build(revision) if build else self.image(revision)
        plan = stackfile.StackPlan(
            stack=self.stack, image=image, revision=revision, public_port=self.port,
            proxy_image=self.proxy_image, proxy_config_file="swarm-proxy.conf", replicas=self.replicas,
            health_interval=self.health_interval, max_replicas_per_node=self.max_replicas_per_node)
        compose = self.compose_model(image)
        stack, _notes = stackfile.render(compose, plan)
        if adjust:
            adjust(stack, compose)
        (self.project.path / "swarm-proxy.conf").write_text(stackfile.proxy_conf(plan))
        name = f"{self.stack}-{revision[:12]}.yml"
        (self.project.path / name).write_text(stackfile.to_yaml(stack))
        return SwarmRelease(stack=self.stack, stack_file=name, image=image, revision=revision,
                            replicas=self.replicas, max_replicas_per_node=self.max_replicas_per_node)

    def remove(self) -> None:
        remove_stack(self.stack)


# --- a droplet: the second engine on its own -----------------------------------------------------------------------

@dataclass
class Droplet:
    """A second engine in a container, in no swarm: a machine of its own that can be rebooted (``docker restart``)
    without touching this machine's engine. ``run`` starts a command of this machine in the engine's network
    namespace, so it sees what a process on that machine sees (its 127.0.0.1, its containers' addresses)."""

    container: str
    socket_dir: str

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_dir}/docker.sock"

    def pid(self) -> int:
        return int(_docker("inspect", "--format", "{{.State.Pid}}", self.container).strip())

    def address(self) -> str:
        """Where this machine reaches the droplet's published ports (the container's address may change on a
        restart: read it each time)."""
        return _docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                       self.container).split()[0]

    def argv(self, *command: str) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid()}/ns/net", *command]

    def answers(self, timeout: float = 60) -> bool:
        return _engine_answers(self.container, timeout)

    def load(self, *images: str) -> None:
        """``docker save`` here piped into ``docker load`` there: the droplet has no registry to pull from."""
        saved = subprocess.run(["docker", "save", *images], capture_output=True, check=True, timeout=300).stdout
        loaded = subprocess.run(["docker", "load"], input=saved, capture_output=True, timeout=300,
                                env={**os.environ, "DOCKER_HOST": self.docker_host})
        if loaded.returncode != 0:
            raise RuntimeError(f"docker load into {self.container}: {loaded.stderr.decode(errors='replace')[-300:]}")


@contextlib.contextmanager
def droplet(*shared: str) -> Iterator[Droplet | str]:
    """A standalone second engine for the duration; yields why not (a string) when it cannot run here.
    ``shared``: directories it sees where this machine does (the project a deploy runs in: its bind mounts)."""
    reason = build_node_image()
    if reason:
        yield reason
        return
    name = f"droplet-{uuid.uuid4().hex[:8]}"
    socket_dir = tempfile.mkdtemp(prefix=f"{name}-")
    reason = _start_node_container(name, socket_dir, shared)
    if reason:
        shutil.rmtree(socket_dir, ignore_errors=True)
        yield f"the droplet container does not start: {reason}"
        return
    try:
        if not _engine_answers(name):
            yield f"dockerd in {name} never answered: {_docker('logs', '--tail', '5', name, check=False)}"
            return
        yield Droplet(name, socket_dir)
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=120)
        shutil.rmtree(socket_dir, ignore_errors=True)
