"""Kept images: the last N builds stay (by tag) so a rollback needs no rebuild; older ones are pruned."""

from __future__ import annotations

import json
from dataclasses import dataclass

from droplet_deploy.commands import docker
from droplet_deploy.core.config import Settings
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


def prune(target: Target, settings: Settings, in_use: set[str]) -> list[str]:
    """Remove the app's images past ``keep_images`` that no container uses; the references removed."""
    doomed = [i.ref for i in choose_prunable(kept_images(target, settings), settings.keep_images, in_use)]
    if doomed:
        target.run(docker.remove_images(doomed), check=False)
    return doomed
