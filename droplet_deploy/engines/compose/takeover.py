"""What runs today, read before a deploy changes anything: the compose project that publishes the public port, and
the ones that hold the compose file's volumes.

A stack started the usual way (``docker compose up -d`` in its directory) runs under compose's default project
name, the directory's, and so do its volumes (``<dir>_<volume>``). A deploy under another project name would
start the app on new, empty volumes beside it: preflight stops that in one line naming the project to set, and
with it set the first deploy takes over the stack (its own app container's port is handed to the proxy:
``handover.py``). Probes and pure judgements: nothing here changes anything.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from droplet_deploy.commands import docker
from droplet_deploy.core.config import Settings
from droplet_deploy.steps.preflight import Item
from droplet_deploy.transport.target import Target


@dataclass(frozen=True)
class Running:
    """A container as ``docker.COMPOSE_LINE`` shows it (project and service empty for one compose did not make)."""

    id: str
    name: str
    project: str
    service: str
    config_files: tuple[str, ...]


@dataclass(frozen=True)
class Volume:
    name: str
    project: str
    key: str  # the name the compose file gives it under `volumes:`


def parse_running(stdout: str) -> list[Running]:
    found = []
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) < 4 or not fields[0].strip():
            continue
        files = fields[4].split(",") if len(fields) > 4 and fields[4] else []
        found.append(Running(fields[0].strip(), fields[1], fields[2], fields[3],
                             tuple(posixpath.normpath(f) for f in files if f)))
    return found


def parse_volumes(stdout: str) -> list[Volume]:
    found = []
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and all(fields):
            found.append(Volume(*fields))
    return found


def volume_keys(doc: Mapping) -> list[str]:
    """The compose file's named volumes that compose prefixes with the project name (not `external`, no `name`)."""
    volumes = doc.get("volumes")
    if not isinstance(volumes, dict):
        return []
    return [str(key) for key, spec in volumes.items()
            if not (isinstance(spec, dict) and (spec.get("external") or spec.get("name")))]


def setting(settings: Settings) -> str:
    return f"deploy.environments.{settings.env}.project"


def port_item(settings: Settings, holders: Iterable[Running]) -> Item | None:
    """What the containers publishing the public port mean for a deploy; None when none does."""
    holders = list(holders)
    port, ours = settings.public_port, [h for h in holders if h.project == settings.project]
    if any(h.service == settings.proxy_service for h in ours):
        return Item("public port", True, f"{port} served by the stack's proxy")
    apps = [h for h in ours if h.service == settings.app_service]
    if apps:
        return Item("public port", True, f"{port} published by {apps[0].name}: this deploy hands it to the "
                                         f"{settings.proxy_service} once the new app proves itself (a gap of about "
                                         "a second, measured and printed); later deploys have none")
    other = next((h for h in holders if h.project != settings.project), None)
    if other is None:
        return None
    if other.project:
        return Item("public port", False, f"{port} is published by {other.name} of the compose project "
                    f"{other.project!r} that runs today; to take it over with its volumes set "
                    f"{setting(settings)}: {other.project}")
    return Item("public port", False, f"{port} is published by container {other.name}; stop it or set "
                f"deploy.environments.{settings.env}.public_port")


def related_projects(settings: Settings, compose_path: str, containers: Iterable[Running],
                     holders: Iterable[Running]) -> set[str]:
    """Projects that run this stack today: by the compose file their containers were made from (running or
    stopped), and by the public port. A volume alone says nothing of which file made it: a dev stack's
    ``<dir>_data`` is not the test environment's."""
    path = posixpath.normpath(compose_path)
    found = {c.project for c in containers if path in c.config_files}
    found |= {h.project for h in holders if h.project}
    # Another environment of this config (a staging beside production) is a stack the toolkit deploys itself.
    found -= set(settings.sibling_projects)
    found.discard(settings.project)
    found.discard("")
    return found


def volume_item(settings: Settings, keys: Iterable[str], volumes: Iterable[Volume], related: set[str]) -> Item:
    """Never a fresh volume while one of a related project holds the same compose volume."""
    volumes = list(volumes)
    names = {v.name for v in volumes}
    for key in keys:
        mine = f"{settings.project}_{key}"
        if mine in names:
            continue
        theirs = sorted((v for v in volumes if v.key == key and v.project in related), key=lambda v: v.name)
        if theirs:
            found = theirs[0]
            return Item("volumes", False, f"volume {found.name} of the compose project {found.project!r} holds "
                        f"{settings.compose_file}'s {key!r}; a deploy as {settings.project!r} would start on a new, "
                        f"empty {mine}: set {setting(settings)}: {found.project} to keep its data")
    return Item("volumes", True, f"no other compose project holds {settings.compose_file}'s volumes")


def holders(target: Target, port: int) -> list[Running]:
    return parse_running(target.probe(docker.publishing(port)).stdout)


def check(target: Target, settings: Settings, doc: Mapping, compose_path: str, *, local: bool) -> list[Item]:
    """The preflight items: the volumes and, on a host (where no port check of this machine applies), the public
    port's holder when a container holds it."""
    publishing = holders(target, settings.public_port)
    containers = parse_running(target.probe(docker.compose_containers()).stdout)
    volumes = parse_volumes(target.probe(docker.compose_volumes()).stdout)
    related = related_projects(settings, compose_path, containers, publishing)
    port = None if local else port_item(settings, publishing)
    return [*([port] if port is not None else []), volume_item(settings, volume_keys(doc), volumes, related)]
