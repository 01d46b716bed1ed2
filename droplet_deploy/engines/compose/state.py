"""What a compose stack runs now, read with one ``docker ps``, one ``docker inspect`` and, when a proxy runs, one
read of its upstream file: probes (a command plus a pure parser), so plans are built from real state."""

from __future__ import annotations

import json

from droplet_deploy.commands import docker
from droplet_deploy.commands import proxy as proxy_cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.engines.snapshot import Container, Snapshot
from droplet_deploy.transport.target import Target


def read(target: Target, settings: Settings, *, upstream: bool = True) -> Snapshot:
    """The stack's containers; with ``upstream``, also what the proxy routes to (one more command: a step that
    only needs the containers skips it)."""
    listed = target.probe(docker.containers(settings.project, all_states=True), check=True)
    ids = parse_ids(listed.stdout)
    containers: list[Container] = []
    if ids:
        inspected = target.probe(docker.inspect(ids))
        # A container can vanish between ps and inspect; inspect then fails for that id only.
        if inspected.ok or inspected.stdout.strip():
            containers = parse_inspect(inspected.stdout)
    snapshot = Snapshot(settings.app_service, settings.proxy_service, tuple(containers))
    proxy = snapshot.proxy
    if proxy is None or not upstream:
        return snapshot
    return Snapshot(settings.app_service, settings.proxy_service, tuple(containers),
                    read_upstream(target, settings, proxy))


def read_upstream(target: Target, settings: Settings, proxy: Container) -> str | None:
    result = target.probe(proxy_cmd.read_upstream(proxy.id, settings.upstream_file))
    return parse_upstream(result.stdout) if result.ok else None


def parse_upstream(text: str) -> str | None:
    for line in text.splitlines():
        words = line.replace(";", " ").split()
        if len(words) >= 2 and words[0] == "server":
            return words[1].rsplit(":", 1)[0]
    return None


def parse_workers_before(text: str) -> tuple[int, ...]:
    """The pids on a switch's ``workers-before:`` line (commands/proxy.py's SWITCH_UPSTREAM)."""
    for line in text.splitlines():
        if line.startswith("workers-before:"):
            return tuple(int(w) for w in line.split(":", 1)[1].split() if w.isdigit())
    return ()


def parse_ids(stdout: str) -> list[str]:
    ids = []
    for line in stdout.splitlines():
        line = line.strip()
        if line:
            ids.append(json.loads(line)["ID"] if line.startswith("{") else line)
    return ids


def parse_inspect(stdout: str) -> list[Container]:
    found = []
    for item in json.loads(stdout or "[]"):
        config = item.get("Config") or {}
        labels = config.get("Labels") or {}
        state = item.get("State") or {}
        networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
        found.append(Container(
            id=item["Id"],
            name=item.get("Name", "").lstrip("/"),
            service=labels.get("com.docker.compose.service", ""),
            image=config.get("Image", ""),
            revision=labels.get(docker.REVISION_LABEL),
            state=state.get("Status", "unknown"),
            health=(state.get("Health") or {}).get("Status"),
            started_at=state.get("StartedAt", ""),
            number=int(labels.get("com.docker.compose.container-number", "0") or 0),
            addresses=tuple(n.get("IPAddress") for n in networks.values() if n.get("IPAddress")),
            published=parse_published((item.get("NetworkSettings") or {}).get("Ports")),
        ))
    return sorted(found, key=lambda c: (c.service, c.number))


def parse_published(ports: dict | None) -> tuple[int, ...]:
    """Host ports from inspect's ``NetworkSettings.Ports`` (``{"8000/tcp": [{"HostPort": "8111"}]}``), each once."""
    found: list[int] = []
    for bindings in (ports or {}).values():
        for binding in bindings or ():
            port = str(binding.get("HostPort") or "")
            if port.isdigit() and int(port) not in found:
                found.append(int(port))
    return tuple(found)
