"""The built image onto every node that lacks it, by ID.

Through the manager's registry (``registry.py``) when it can: the release is pushed there (only the layers the
registry lacks), then every node pulls it at once from ``localhost:<port>`` on its own loopback, relayed to the
manager's 127.0.0.1 over the way the manager already reaches that node's engine (``transport/relay.py``), so a
node receives only the layers it lacks and no engine needs an insecure-registry entry. Measured here
(bench/swarm.py --distribution): a one-line release of the 231 MB reference image moves in well under a second per
release, against 4.9 s per node, one node after another, for ``docker save | docker load``, which always streams
every layer. That stays the fallback, per node: the first deploy to a node (nothing there yet to run the relay's
node end from), an image without python3, no registry image, or a relayed pull that fails.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.core.errors import CommandFailed, PreflightFailed
from droplet_deploy.engines.swarm.registry import ImageRegistry, RegistryUnavailable, started
from droplet_deploy.engines.swarm.state import image_on, parse_free_kb
from droplet_deploy.transport.relay import RelayFailed, relayed
from droplet_deploy.transport.target import Target

PULL_TIMEOUT = 600.0
RELAY_READY = 30.0


@dataclass(frozen=True)
class NodeEngine:
    """How the manager reaches one node's engine and, optionally, runs a command on that node (for ``df``).

    ``docker``: ``("docker", "--host", "ssh://deploy@worker-1")`` on a cluster; ``("docker", "exec", "-i",
    "node-1", "docker")`` for an engine in a container on the manager (the test cluster). ``on_node``: the argv
    prefix that runs a command on that node (``("ssh", "worker-1")``, ``("docker", "exec", "node-1")``).
    """

    hostname: str
    docker: tuple[str, ...]
    on_node: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Delivery:
    hostname: str
    image_id: str
    sent: bool  # False when the node already had it
    how: str = ""  # "registry" (only the layers it lacked) or "save | load" (the whole image)
    carried: int | None = None  # bytes the relay carried to the node (the layers it lacked, the manifests)


def ensure_everywhere(target: Target, image: str, nodes: Sequence[NodeEngine], *,
                      registry: ImageRegistry | None = None,
                      say: Callable[[str], None] | None = None) -> list[Delivery]:
    """Make ``image`` (by ID) present on every node; raise ``PreflightFailed`` naming the node it could not reach."""
    say = say or target.say
    want = image_on(target, image)
    if want is None:
        raise PreflightFailed(f"[{target.name}] image {image} is not on the manager",
                              hint="build it on the manager first (the build step does)")
    # Every node is asked at once: each answer is a connection to that node's engine, and ten of them one after
    # the other would cost more than the delivery itself.
    with ThreadPoolExecutor(max_workers=max(1, len(nodes)), thread_name_prefix="distribute") as pool:
        found = list(pool.map(lambda node: image_on(target, image, node.docker), nodes))
    done = {node.hostname: Delivery(node.hostname, want, sent=False)
            for node, have in zip(nodes, found, strict=True) if have == want}
    lacking = [node for node in nodes if node.hostname not in done]
    if lacking and registry is not None and not target.dry:
        done.update(_through_registry(target, image, want, lacking, registry, say))
    for node in lacking:
        if node.hostname not in done:
            done[node.hostname] = _save_load(target, image, want, node, say)
    return [done[node.hostname] for node in nodes]


def _save_load(target: Target, image: str, want: str, node: NodeEngine, say: Callable[[str], None]) -> Delivery:
    say(f"[swarm] sending {image} to {node.hostname} (docker save | docker load)")
    target.run(cmd.save_into(image, cmd.load(node.docker)))
    if not target.dry:
        _arrived(target, image, want, node)
    return Delivery(node.hostname, want, sent=True, how="save | load")


def _arrived(target: Target, image: str, want: str, node: NodeEngine) -> None:
    have = image_on(target, image, node.docker)
    if have != want:
        raise PreflightFailed(f"[{node.hostname}] image {image} did not arrive (found {have or 'nothing'})",
                              hint="check the node's free disk and that its engine answers")


def _through_registry(target: Target, image: str, want: str, nodes: Sequence[NodeEngine], registry: ImageRegistry,
                      say: Callable[[str], None]) -> dict[str, Delivery]:
    """Push once while every node's relay starts, then every node pulls at once; the nodes it could not serve
    are left out (save | load)."""
    tag = f"release:{want.split(':')[-1][:24]}"
    with ThreadPoolExecutor(max_workers=len(nodes) + 1, thread_name_prefix="distribute") as pool:
        pushed = pool.submit(_into_registry, target, image, tag, registry)
        outcomes = list(pool.map(lambda node: _pull(target, image, want, node, tag, pushed), nodes))
    port = pushed.result()
    if isinstance(port, int):
        target.run(cmd.untag(f"localhost:{port}/{tag}"), check=False)
    else:
        say(f"[swarm] no image registry on the manager: {port}")
    delivered = {}
    for node, outcome in zip(nodes, outcomes, strict=True):
        if isinstance(outcome, Delivery):
            carried = outcome.carried or 0
            size = f"{carried / 1e6:.1f} MB" if carried >= 1e5 else f"{carried} bytes"
            say(f"[swarm] {node.hostname}: pulled {image} from the manager's registry, {size} moved (the layers "
                "it lacked)")
            delivered[node.hostname] = outcome
        elif isinstance(port, int):
            say(f"[swarm] {node.hostname}: {outcome}; sending the whole image instead")
    return delivered


def _into_registry(target: Target, image: str, tag: str, registry: ImageRegistry) -> int | str:
    """The registry's port once ``image`` is in it as ``tag``, else why not."""
    try:
        port = started(target, registry)
    except RegistryUnavailable as why:
        return str(why)
    ref = f"localhost:{port}/{tag}"
    for argv in (cmd.image_tag(image, ref), cmd.image_push(ref)):
        result = target.run(argv, check=False, timeout=PULL_TIMEOUT)
        if not result.ok:
            return f"`docker {' '.join(argv[1:3])}` failed: {_last(result.stderr)}"
    return port


def _pull(target: Target, image: str, want: str, node: NodeEngine, tag: str, pushed: Future) -> Delivery | str:
    """The node pulls the release through a relay of its own, started while the push runs; a Delivery, or why
    it could not."""
    runner = _relay_image(target, image, node)
    if runner is None:
        return "no earlier release on it to run the relay from"
    name = f"droplet-relay-{uuid.uuid4().hex[:10]}"
    stream = target.duplex(cmd.relay_node_end(runner, name, node.docker),
                           shown=f"{' '.join(node.docker)} run --rm --network host {runner} (the image relay's node end)")
    port = pushed.result()
    if not isinstance(port, int):
        stream.close()
        return "the registry is not there"
    # The node end prints its port at once; a node whose engine never starts it must not hold the deploy.
    watchdog = threading.Timer(RELAY_READY, stream.close)
    watchdog.start()
    try:
        with relayed(stream, target.connect, ("127.0.0.1", port)) as (node_port, relay):
            watchdog.cancel()
            local = f"localhost:{node_port}/{tag}"
            pulled = target.run(cmd.image_pull(local, node.docker), check=False, timeout=PULL_TIMEOUT)
            if not pulled.ok:
                return f"the pull through the relay failed: {_last(pulled.stderr)}"
            carried = relay.carried
        target.run(cmd.image_tag(local, image, node.docker), check=False)
        target.run(cmd.untag(local, node.docker), check=False)
    except RelayFailed as why:
        target.probe(cmd.container_rm(name, node.docker))
        return f"the relay did not start ({why})"
    except CommandFailed as failed:
        target.probe(cmd.container_rm(name, node.docker))
        return f"the relay failed ({_last(failed.stderr)})"
    finally:
        watchdog.cancel()
    if image_on(target, image, node.docker) != want:
        return "the pulled image has another ID"
    return Delivery(node.hostname, want, sent=True, how="registry", carried=carried)


def _relay_image(target: Target, image: str, node: NodeEngine) -> str | None:
    """An image of this release's repository already on the node (the release before): the relay runs from it."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    listed = target.probe(cmd.python_images(repository, node.docker))
    found = [line.strip() for line in listed.stdout.splitlines() if line.strip() and "<none>" not in line]
    return found[0] if listed.ok and found else None


def _last(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else "no output"


def missing_on(target: Target, image: str, nodes: Sequence[NodeEngine]) -> list[str]:
    """Hostnames of the nodes that lack ``image`` with the manager's ID (preflight of a rollback: no rebuild)."""
    want = image_on(target, image)
    return [node.hostname for node in nodes if want is None or image_on(target, image, node.docker) != want]


def free_disk_kb(target: Target, node: NodeEngine | None = None, path: str = "/var/lib/docker") -> int | None:
    """Free kilobytes where the engine keeps images, on the manager (``node=None``) or on ``node``; None when
    the manager has no way to run a command on the node."""
    if node is None:
        argv = cmd.disk_free(path)
    elif node.on_node is None:
        return None
    else:
        argv = [*node.on_node, *cmd.disk_free(path)]
    result = target.probe(argv)
    return parse_free_kb(result.stdout) if result.ok else None


def node_engine(address: str) -> NodeEngine:
    """One entry of ``swarm_nodes`` (a DOCKER_HOST, ``ssh://deploy@worker-1``) as the manager reaches it."""
    hostname = address.split("://", 1)[-1].rsplit("@", 1)[-1].split(":", 1)[0] or address
    return NodeEngine(hostname, ("docker", "--host", address))
