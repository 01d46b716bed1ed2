"""Kept images: the last N builds stay (by tag) so a rollback needs no rebuild; older ones are pruned."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from droplet_deploy.commands import docker
from droplet_deploy.core.config import Settings
from droplet_deploy.steps.build import service_repository
from droplet_deploy.transport.target import Target


@dataclass(frozen=True)
class Image:
    ref: str
    tag: str
    id: str
    created: str


def parse_images(stdout: str, repository: str) -> list[Image]:
    found = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        tag = data.get("Tag", "")
        if tag and tag != "<none>":
            found.append(Image(f"{repository}:{tag}", tag, data.get("ID", ""), data.get("CreatedAt", "")))
    # Newest first; CreatedAt sorts correctly as text ("2026-11-23 12:00:00 +0000 UTC").
    return sorted(found, key=lambda i: i.created, reverse=True)


def kept_images(target: Target, settings: Settings) -> list[Image]:
    result = target.probe(docker.images(settings.app_name), check=True)
    return parse_images(result.stdout, settings.app_name)


def choose_prunable(images: list[Image], keep: int, in_use: set[str]) -> list[Image]:
    """Everything past the newest ``keep``, except images a container still uses."""
    return [i for i in images[keep:] if i.ref not in in_use]


def prune(target: Target, settings: Settings, in_use: Callable[[], set[str]]) -> list[str]:
    """Remove the app's images past ``keep_images`` that no container uses; the references removed. ``in_use`` is
    asked once the images are listed, so a caller may read it meanwhile."""
    listed = kept_images(target, settings)
    doomed = [i.ref for i in choose_prunable(listed, settings.keep_images, in_use())]
    if doomed:
        target.run(docker.remove_images(doomed), check=False)
    return doomed


def prune_services(target: Target, settings: Settings, services: Sequence[str], in_use: set[str]) -> list[str]:
    """The images of services built of their own whose tag no kept app image has: a rollback to any kept release
    finds each of its services' images too, and nothing older stays."""
    kept = {i.tag for i in kept_images(target, settings)}
    doomed = []
    for service in services:
        repository = service_repository(settings, service)
        found = parse_images(target.probe(docker.images(repository), check=True).stdout, repository)
        doomed += [i.ref for i in found if i.tag not in kept and i.ref not in in_use]
    if doomed:
        target.run(docker.remove_images(doomed), check=False)
    return doomed
