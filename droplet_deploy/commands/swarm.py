"""docker CLI commands for a Swarm cluster: the swarm itself, nodes, stacks, services, tasks, image transfer.

Every builder takes ``docker``, the argv that reaches an engine: ``("docker",)`` for the one the commands run
beside (the manager), ``("docker", "--host", "ssh://deploy@worker-2")`` or ``("docker", "--host",
"tcp://10.0.0.7:2375")`` for another node's engine. Names given by users (stacks, services, images) come after
``--``, so a value starting with ``-`` is never read as an option. Scripts are constants; values reach them as
positional parameters.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from droplet_deploy.commands.docker import log_options

DOCKER: tuple[str, ...] = ("docker",)
JSON_LINES = "{{json .}}"
STACK_LABEL = "com.docker.stack.namespace"
# On a service `deploy.stop` scaled to 0: the replica count `deploy.start` gives it back.
STOPPED_LABEL = "org.droplet-deploy.stopped-replicas"


# --- the swarm ----------------------------------------------------------------------------------------------------

def swarm_info(docker: Sequence[str] = DOCKER) -> list[str]:
    """One JSON object: LocalNodeState (inactive/pending/active/error/locked), ControlAvailable, Nodes, ..."""
    return [*docker, "info", "--format", "{{json .Swarm}}"]


# --- nodes --------------------------------------------------------------------------------------------------------

def node_ls(docker: Sequence[str] = DOCKER) -> list[str]:
    """One JSON object per line: ID, Hostname, Status, Availability, ManagerStatus, EngineVersion, Self."""
    return [*docker, "node", "ls", "--format", JSON_LINES]


# --- stacks and services ------------------------------------------------------------------------------------------

def stack_deploy(compose_file: str, stack: str, *, prune: bool = False, with_registry_auth: bool = False,
                 resolve_image: str = "never", docker: Sequence[str] = DOCKER) -> list[str]:
    """``resolve_image="never"``: images reach the nodes by ``docker load`` (no registry to ask for a digest);
    ``"always"`` when they come from a registry, so every node runs the same digest."""
    if resolve_image not in ("always", "changed", "never"):
        raise ValueError(f"resolve_image is always, changed or never, not {resolve_image!r}")
    argv = [*docker, "stack", "deploy", "--compose-file", compose_file, "--resolve-image", resolve_image]
    if with_registry_auth:
        argv.append("--with-registry-auth")
    if prune:
        argv.append("--prune")
    return [*argv, "--", stack]


def stack_services(stack: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """The stack's services, one JSON object per line: ID, Name, Mode, Replicas ("2/2"), Image."""
    return [*docker, "service", "ls", "--filter", f"label={STACK_LABEL}={stack}", "--format", JSON_LINES]


def service_inspect(services: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    """A JSON array: each service's Spec, PreviousSpec (what ``rollback`` returns to) and UpdateStatus."""
    return [*docker, "service", "inspect", "--", *services]


def service_tasks(service: str, *, running_only: bool = False, docker: Sequence[str] = DOCKER) -> list[str]:
    """Task IDs of ``service``, one per line (``task_inspect`` reads them in one call)."""
    argv = [*docker, "service", "ps", "--quiet", "--no-trunc"]
    if running_only:
        argv += ["--filter", "desired-state=running"]
    return [*argv, "--", service]


def task_inspect(task_ids: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    """A JSON array: each task's node, desired and current state, image, container and overlay addresses."""
    return [*docker, "inspect", "--type", "task", "--", *task_ids]


def service_update_image(service: str, image: str, *, force: bool = False, docker: Sequence[str] = DOCKER) -> list[str]:
    """Replace the image of one service (Swarm rolls the tasks per its update_config); returns at once."""
    argv = [*docker, "service", "update", "--detach", "--no-resolve-image", "--image", image]
    if force:
        argv.append("--force")
    return [*argv, "--", service]


def service_rollback(service: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """Back to the service's PreviousSpec (Swarm keeps one); returns at once."""
    return [*docker, "service", "rollback", "--detach", "--", service]


def service_scale(service: str, replicas: int, *, remember: int | None = None,
                  docker: Sequence[str] = DOCKER) -> list[str]:
    """Set the replica count of ``service`` (returns at once; the tasks are not replaced, only added or stopped).
    ``remember``: the count to give back later, kept in the service's ``STOPPED_LABEL``; None removes it."""
    if replicas < 0:
        raise ValueError(f"a replica count is 0 or more, not {replicas}")
    label = ["--label-add", f"{STOPPED_LABEL}={remember}"] if remember is not None else ["--label-rm", STOPPED_LABEL]
    return [*docker, "service", "update", "--detach", "--replicas", str(replicas), *label, "--", service]


def service_logs(service: str, *, since: str | None = None, tail: int | None = None, follow: bool = False,
                 docker: Sequence[str] = DOCKER) -> list[str]:
    """The logs of every task of ``service`` wherever it runs, each line prefixed with its task and node."""
    return [*docker, "service", "logs", *log_options(since=since, tail=tail, follow=follow), "--", service]


def network_inspect(networks: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    """A JSON array: each network's Name, Driver and whether a plain container may join it (Attachable)."""
    return [*docker, "network", "inspect", "--", *networks]


def one_off(image: str, command: Sequence[str], *, env_file: str | None = None, network: str | None = None,
            volumes: Sequence[str] = (), interactive: bool = False, docker: Sequence[str] = DOCKER) -> list[str]:
    """A container of ``image`` running ``command`` on this engine, removed when it exits (``deploy.exec``).
    ``volumes``: ``source:target[:ro]`` of named volumes. ``interactive``: a terminal, stdin attached."""
    argv = [*docker, "run", "--rm", *(["--interactive", "--tty"] if interactive else [])]
    if env_file:
        argv += ["--env-file", env_file]
    if network:
        argv += ["--network", network]
    for volume in volumes:
        argv += ["--volume", volume]
    return [*argv, "--", image, *command]


def service_containers(service: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """Containers of ``service`` running on this engine (a task's container lives on its node's engine)."""
    return [*docker, "ps", "--quiet", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={service}"]


# --- images on nodes ----------------------------------------------------------------------------------------------

def image_id(image: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """The image's ID on that engine; non-zero exit when it is not there."""
    return [*docker, "image", "inspect", "--format", "{{.Id}}", "--", image]


def save(images: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    """The images as one tar stream on stdout."""
    return [*docker, "save", "--", *images]


def load(docker: Sequence[str] = DOCKER) -> list[str]:
    """Load a tar stream from stdin."""
    return [*docker, "load", "--quiet"]


def disk_free(path: str = "/var/lib/docker") -> list[str]:
    """Free kilobytes where the engine keeps its images (``df -Pk``), read on the node itself."""
    return ["df", "-Pk", "--", path]


# ``docker save`` on this engine piped into the receiving command given as the remaining arguments (another
# engine's ``docker load``: ``docker --host ...``, ``ssh worker docker load``). ``sh`` has no pipefail: a failed
# save says so on stderr, and the load of a truncated stream fails too.
_SAVE_INTO = 'image="$1"; shift; { docker save -- "$image" || echo "docker save failed: $?" >&2; } | "$@"'


def save_into(image: str, receive: Sequence[str]) -> list[str]:
    """Stream ``image`` from this engine into ``receive`` (the argv of a ``docker load`` elsewhere), no file.

    A failed save shows as a failed load (it reads a truncated stream); callers confirm by the image's ID on
    the receiving engine either way.
    """
    if not receive:
        raise ValueError("save_into needs the command that loads the image on the other side")
    return ["sh", "-c", _SAVE_INTO, "save-into", image, *receive]


# --- probes from inside the stack's network -----------------------------------------------------------------------

# GET one URL and print the body whatever the status (a 503's body says why). Tries the clients an image is likely
# to have: curl (Debian images), wget (busybox, nginx:alpine), python3.
_FETCH = (
    'if command -v curl >/dev/null 2>&1; then exec curl -sS --max-time "$2" -- "$1"; fi; '
    'if command -v wget >/dev/null 2>&1; then exec wget -q -O - -T "$2" "$1"; fi; '
    'exec python3 -c \'import sys, urllib.request as r, urllib.error as e\n'
    'try: print(r.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())\n'
    'except e.HTTPError as x: print(x.read().decode())\' "$1" "$2"'
)


def exec_fetch(container: str, url: str, *, timeout: float = 3.0, docker: Sequence[str] = DOCKER) -> list[str]:
    """GET ``url`` from inside ``container`` (on the stack's overlay network, where task addresses route)."""
    return [*docker, "exec", container, "sh", "-c", _FETCH, "fetch", url, f"{timeout:g}"]


# --- the revision gate, a health check inside the app's own container ---------------------------------------------

# Healthy only when the app's health URL says "healthy" AND reports the expected revision, so Swarm neither counts
# a task as running nor lists it in service discovery (DNS or VIP) before it proved what it serves. Runs in the
# app's image, so it takes whichever HTTP client is there; JSON spacing is removed before matching.
_REVISION_GATE = (
    'body=$( (curl -sS --max-time 2 -- "$url" || wget -q -O - -T 2 "$url" '
    '|| python3 -c "import sys, urllib.request as r; print(r.urlopen(sys.argv[1], timeout=2).read().decode())" '
    '"$url") 2>/dev/null | tr -d " \\t\\r\\n"); '
    'case "$body" in *\'"status":"healthy"\'*) ;; *) exit 1;; esac; '
    'case "$body" in *"\\"revision\\":\\"$want\\""*) exit 0;; esac; exit 1'
)


def revision_gate(url: str, revision: str, before: str | None = None) -> list[str]:
    """A compose ``healthcheck.test`` (``CMD-SHELL``): the app's own check first (``before``, a shell line),
    then the revision gate. Values are assigned as quoted shell words at the top of the line (a health check
    is one string: there is no argv to pass them in)."""
    assign = f"url={shlex.quote(url)}; want={shlex.quote(revision)}; "
    first = f"( {before} ) && " if before else ""
    return ["CMD-SHELL", f"{assign}{first}{{ {_REVISION_GATE}; }}"]


# --- image transfer through a registry on the manager -------------------------------------------------------------

REGISTRY_LABEL = "org.droplet-deploy.image-registry"  # on the registry container: the stack it carries images for
RELAY_LABEL = "org.droplet-deploy.image-relay"


def registry_state(name: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """``running``/``exited``/... of the registry container; non-zero exit when there is none."""
    return [*docker, "container", "inspect", "--format", "{{.State.Status}}", "--", name]


def registry_run(name: str, volume: str, image: str, stack: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """The manager's image registry: port 5000 published on 127.0.0.1 only (a port the engine picks), its blobs on
    a volume so a release pushes only the layers the one before lacked."""
    return [*docker, "run", "--detach", "--name", name, "--label", f"{REGISTRY_LABEL}={stack}",
            "--publish", "127.0.0.1::5000", "--volume", f"{volume}:/var/lib/registry", "--", image]


def container_start(name: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "container", "start", "--", name]


def published_port(name: str, port: str = "5000/tcp", docker: Sequence[str] = DOCKER) -> list[str]:
    """``127.0.0.1:49153``: where the container's port is published."""
    return [*docker, "container", "port", "--", name, port]


def image_tag(image: str, ref: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "image", "tag", "--", image, ref]


def image_push(ref: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "image", "push", "--quiet", "--", ref]


def image_pull(ref: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "image", "pull", "--quiet", "--", ref]


def untag(ref: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """Drop the tag only: the layers stay while another tag (the release's own) names the image."""
    return [*docker, "image", "rm", "--no-prune", "--", ref]


def python_images(repository: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """The images of ``repository`` that engine holds (``repo:tag`` per line): what the node end of the relay
    can run from without anything new on the node."""
    return [*docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "dangling=false", "--",
            repository]


def container_rm(name: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "container", "rm", "--force", "--", name]


# The node end of the image relay, run in a container on the node's own network (``--network host``): it listens
# on the node's 127.0.0.1, prints ``PORT <n>``, and carries every connection the node's engine opens to it (the
# pull) over its stdin/stdout as frames (connection id, kind, length); the toolkit's end opens each one to the
# registry on the manager's 127.0.0.1. The node needs nothing but an image with python3, which it already has
# from the release before.
RELAY_FRAME = ">IBI"  # connection id, kind (0 open, 1 data, 2 close), length; the data follows
RELAY_NODE_END = r'''
import os, socket, struct, sys, threading
out, inp, lock, conns = sys.stdout.buffer, sys.stdin.buffer, threading.Lock(), {}
HEAD = struct.Struct(FRAME)
def send(cid, kind, data=b""):
    with lock:
        out.write(HEAD.pack(cid, kind, len(data)) + data)
        out.flush()
def pump(cid, sock):
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            send(cid, 1, data)
    except OSError:
        pass
    send(cid, 2)
def accept(listener):
    cid = 0
    while True:
        sock, _ = listener.accept()
        cid += 1
        conns[cid] = sock
        send(cid, 0)
        threading.Thread(target=pump, args=(cid, sock), daemon=True).start()
def exactly(n):
    data = inp.read(n)
    if len(data) < n:
        os._exit(0)
    return data
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(32)
out.write(b"PORT %d\n" % listener.getsockname()[1])
out.flush()
threading.Thread(target=accept, args=(listener,), daemon=True).start()
while True:
    cid, kind, size = HEAD.unpack(exactly(HEAD.size))
    data = exactly(size) if size else b""
    sock = conns.get(cid)
    if sock is None:
        continue
    try:
        if kind == 1:
            sock.sendall(data)
        else:
            conns.pop(cid, None)
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
    except OSError:
        pass
'''.replace("FRAME", repr(RELAY_FRAME))


def relay_node_end(image: str, name: str, docker: Sequence[str] = DOCKER) -> list[str]:
    """The relay's node end (``RELAY_NODE_END``) in a container of ``image`` on the node reached by ``docker``;
    it ends when its stdin closes (``--rm``: nothing is left on the node)."""
    return [*docker, "run", "--interactive", "--rm", "--network", "host", "--name", name, "--label",
            f"{RELAY_LABEL}=1", "--entrypoint", "python3", "--", image, "-c", RELAY_NODE_END]
