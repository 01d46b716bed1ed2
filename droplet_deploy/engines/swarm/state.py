"""What the swarm looks like now: probes (one command each) and the pure parsers that read their output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.core.errors import PreflightFailed
from droplet_deploy.transport.target import Target

# Update states after which Swarm changes nothing more on its own.
UPDATE_DONE = "completed"
UPDATE_FAILED = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


@dataclass(frozen=True)
class SwarmInfo:
    state: str  # inactive, pending, active, error, locked
    node_id: str
    node_addr: str
    is_manager: bool
    nodes: int
    managers: int
    error: str = ""


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    status: str  # Ready, Down, Unknown, Disconnected
    availability: str  # Active, Pause, Drain
    manager_status: str  # "", Leader, Reachable, Unreachable
    engine: str = ""
    is_self: bool = False

    @property
    def schedulable(self) -> bool:
        """Swarm places new tasks here."""
        return self.status == "Ready" and self.availability == "Active"


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    image: str
    replicas: int | None  # None for global services
    update_state: str | None
    update_message: str
    previous_image: str | None
    labels: dict[str, str] = field(default_factory=dict)
    env: tuple[str, ...] = ()  # KEY=VALUE, as every task gets it
    volumes: tuple[str, ...] = ()  # named volumes as ``source:target[:ro]``
    network_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    id: str
    service_id: str
    slot: int | None
    node_id: str
    desired_state: str
    state: str  # new ... starting, running, complete, failed, shutdown, rejected, orphaned
    message: str
    error: str
    image: str
    container_id: str
    addresses: dict[str, str]  # network name -> IP
    timestamp: str = ""

    @property
    def running(self) -> bool:
        return self.desired_state == "running" and self.state == "running"

    def address_on(self, network: str) -> str | None:
        return self.addresses.get(network)


@dataclass(frozen=True)
class StackState:
    """One read of a stack: its services (by short name, ``app`` for ``shop_app``) and each one's tasks."""

    stack: str
    services: dict[str, Service]
    tasks: dict[str, list[Task]]

    def service(self, short_name: str) -> Service | None:
        return self.services.get(short_name)

    def running_tasks(self, short_name: str) -> list[Task]:
        return [t for t in self.tasks.get(short_name, []) if t.running]

    def live_tasks(self, short_name: str) -> list[Task]:
        """Tasks Swarm still wants running (the old ones until they are replaced, and new ones starting)."""
        return [t for t in self.tasks.get(short_name, []) if t.desired_state == "running"]


def image_name(image: str) -> str:
    """``shop:abc`` for ``shop:abc@sha256:...`` (Swarm pins the digest when it could resolve one)."""
    return image.split("@", 1)[0]


# --- parsers ------------------------------------------------------------------------------------------------------

def parse_swarm_info(text: str) -> SwarmInfo:
    data = _json_object(text, "docker info")
    return SwarmInfo(
        state=str(data.get("LocalNodeState") or "inactive"),
        node_id=str(data.get("NodeID") or ""),
        node_addr=str(data.get("NodeAddr") or ""),
        is_manager=bool(data.get("ControlAvailable")),
        nodes=int(data.get("Nodes") or 0),
        managers=int(data.get("Managers") or 0),
        error=str(data.get("Error") or ""),
    )


def parse_nodes(text: str) -> list[Node]:
    nodes = []
    for data in _json_lines(text, "docker node ls"):
        nodes.append(Node(
            id=str(data.get("ID", "")), hostname=str(data.get("Hostname", "")), status=str(data.get("Status", "")),
            availability=str(data.get("Availability", "")), manager_status=str(data.get("ManagerStatus") or ""),
            engine=str(data.get("EngineVersion", "")), is_self=bool(data.get("Self")),
        ))
    return nodes


def parse_service_names(text: str) -> list[str]:
    return [str(d["Name"]) for d in _json_lines(text, "docker service ls") if d.get("Name")]


def parse_services(text: str) -> list[Service]:
    """``docker service inspect`` output (a JSON array)."""
    services = []
    for data in _json_array(text, "docker service inspect"):
        spec = data.get("Spec") or {}
        previous = data.get("PreviousSpec") or {}
        replicated = ((spec.get("Mode") or {}).get("Replicated"))
        update = data.get("UpdateStatus") or {}
        services.append(Service(
            id=str(data.get("ID", "")),
            name=str(spec.get("Name", "")),
            image=image_name(_container_image(spec)),
            replicas=int(replicated.get("Replicas", 1)) if isinstance(replicated, dict) else None,
            update_state=update.get("State") or None,
            update_message=str(update.get("Message") or ""),
            previous_image=image_name(_container_image(previous)) or None,
            labels={str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
            **_task_template(spec),
        ))
    return services


def _task_template(spec: dict) -> dict:
    """What a service gives each of its tasks and a one-off container needs too: env, named volumes, networks."""
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    volumes = [f"{m['Source']}:{m['Target']}" + (":ro" if m.get("ReadOnly") else "")
               for m in container.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Source")
               and m.get("Target")]
    return {"env": tuple(str(e) for e in container.get("Env") or ()), "volumes": tuple(volumes),
            "network_ids": tuple(str(n["Target"]) for n in template.get("Networks") or [] if n.get("Target"))}


def parse_attachable(text: str) -> list[str]:
    """Names of the networks in ``docker network inspect`` output that a plain container may join."""
    return [str(d["Name"]) for d in _json_array(text, "docker network inspect") if d.get("Attachable") and d.get("Name")]


def parse_tasks(text: str) -> list[Task]:
    """``docker inspect --type task`` output (a JSON array)."""
    return [_task(data) for data in _json_array(text, "docker inspect --type task")]


def _task(data: dict) -> Task:
    status = data.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    return Task(
        id=str(data.get("ID", "")), service_id=str(data.get("ServiceID", "")),
        slot=data.get("Slot"), node_id=str(data.get("NodeID") or ""),
        desired_state=str(data.get("DesiredState", "")), state=str(status.get("State", "")),
        message=str(status.get("Message") or ""), error=str(status.get("Err") or ""),
        image=image_name(_container_image(data.get("Spec") or {})),
        container_id=str(container.get("ContainerID") or ""), addresses=_addresses(data),
        timestamp=str(status.get("Timestamp") or ""),
    )


def _addresses(task: dict) -> dict[str, str]:
    """Network name -> the task's IP on it (without the prefix length)."""
    addresses = {}
    for attachment in task.get("NetworksAttachments") or []:
        name = ((attachment.get("Network") or {}).get("Spec") or {}).get("Name")
        ips = attachment.get("Addresses") or []
        if name and ips:
            addresses[str(name)] = str(ips[0]).split("/", 1)[0]
    return addresses


def parse_free_kb(text: str) -> int | None:
    """Available kilobytes from ``df -Pk`` (second line, fourth column)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


def _container_image(spec: dict) -> str:
    task_template = spec.get("TaskTemplate") or spec  # a service spec wraps it; a task spec is it
    return str(((task_template.get("ContainerSpec") or {}).get("Image")) or "")


def _json_object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PreflightFailed(f"cannot read the output of `{what}`: {exc}") from None
    if not isinstance(data, dict):
        raise PreflightFailed(f"cannot read the output of `{what}`: not a JSON object")
    return data


def _json_lines(text: str, what: str) -> list[dict]:
    return [_json_object(line, what) for line in text.splitlines() if line.strip()]


def _json_array(text: str, what: str) -> list[dict]:
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PreflightFailed(f"cannot read the output of `{what}`: {exc}") from None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


# --- probes -------------------------------------------------------------------------------------------------------

def read_swarm(target: Target, docker: Sequence[str] = cmd.DOCKER) -> SwarmInfo:
    result = target.probe(cmd.swarm_info(docker))
    if not result.ok:
        raise PreflightFailed(f"[{target.name}] the Docker engine does not answer: "
                              f"{(result.stderr or result.stdout).strip()[:200]}",
                              hint="start dockerd on the manager, or check the host in the environment")
    return parse_swarm_info(result.stdout)


def read_nodes(target: Target) -> list[Node]:
    return parse_nodes(target.probe(cmd.node_ls(), check=True).stdout)


def node_hostnames(target: Target) -> dict[str, str]:
    """Node ID to hostname, for naming where tasks run."""
    return {n.id: n.hostname for n in read_nodes(target)}


def read_stack(target: Target, stack: str) -> StackState:
    """Services of ``stack`` and every task Swarm still keeps for them: three commands whatever their number."""
    names = parse_service_names(target.probe(cmd.stack_services(stack), check=True).stdout)
    if not names:
        return StackState(stack, {}, {})
    services = parse_services(target.probe(cmd.service_inspect(names), check=True).stdout)
    tasks = _read_tasks(target, names)
    prefix = f"{stack}_"
    by_id = {s.id: s for s in services}
    short = {s.id: s.name[len(prefix):] if s.name.startswith(prefix) else s.name for s in services}
    grouped: dict[str, list[Task]] = {short[s.id]: [] for s in services}
    for task in tasks:
        if task.service_id in by_id:
            grouped[short[task.service_id]].append(task)
    return StackState(stack, {short[s.id]: s for s in services}, grouped)


def _read_tasks(target: Target, services: Sequence[str], attempts: int = 3) -> list[Task]:
    """Every task Swarm keeps for ``services``. Swarm prunes old tasks (beyond its history limit) at any time,
    so one listed a moment ago can be gone when inspected: list again then."""
    for attempt in range(attempts):
        task_ids: list[str] = []
        for name in services:
            task_ids += target.probe(cmd.service_tasks(name), check=True).stdout.split()
        if not task_ids:
            return []
        result = target.probe(cmd.task_inspect(task_ids), check=attempt == attempts - 1)
        if result.ok:
            return parse_tasks(result.stdout)
    return []  # not reached: the last attempt raises CommandFailed


def image_on(target: Target, image: str, docker: Sequence[str] = cmd.DOCKER) -> str | None:
    """The image's ID on the engine reached by ``docker``, or None when it is not there."""
    result = target.probe(cmd.image_id(image, docker))
    return (result.stdout.strip() or None) if result.ok else None


def manager_node_id(target: Target) -> str:
    """The node ID of the engine the toolkit reaches (the manager)."""
    return read_swarm(target).node_id


def container_on_manager(target: Target, stack: str, service: str) -> str:
    """A running container of ``stack_service`` on the manager's own engine (to run probes inside the network)."""
    result = target.probe(cmd.service_containers(f"{stack}_{service}"))
    ids = result.stdout.split() if result.ok else []
    if not ids:
        raise PreflightFailed(f"[{target.name}] no running container of {stack}_{service} on the manager to "
                              "probe the tasks' own addresses from",
                              hint=f"check `docker service ps {stack}_{service}`; it is placed on a manager")
    return ids[0]
