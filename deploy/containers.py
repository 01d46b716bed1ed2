"""Probes for the running stack: a command plus a pure parser, so plans are built from real state."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .commands import docker


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    image: str
    revision: str | None
    state: str
    health: str | None
    started_at: str
    number: int
    addresses: tuple[str, ...]

    @property
    def running(self) -> bool:
        return self.state == "running"



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
        ))
    return sorted(found, key=lambda c: (c.service, c.number))


