"""What the local engine runs, as init reads it before the first deploy: a compose project that runs the
repository's compose file today (a dev stack, or the one to take over), and container names that a deploy beside
it could not create again. Read-only ``docker`` look-ups through a probe."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from droplet_deploy.commands import docker
from droplet_deploy.engines.compose import takeover
from droplet_deploy.transport.target import Result

Probe = Callable[[list[str]], Result]


class Running:
    def __init__(self, probe: Probe):
        self.probe = probe

    def containers(self) -> list[takeover.Running]:
        result = self.probe(docker.compose_containers())
        return takeover.parse_running(result.stdout) if result.ok else []

    def adopt(self, section: dict[str, Any], compose_files: Mapping[str, str], fixed_names: Mapping[str, str],
              root: Path) -> list[str]:
        """Lines for the user about what runs: the project that runs the test environment's compose file here,
        and fixed ``container_name``s (other than the app's, which a deploy drops) already taken."""
        found = self.containers()
        todo = []
        path = str((root / compose_files["test"]).resolve())
        projects = sorted({c.project for c in found if path in c.config_files})
        test = section["environments"]["test"]
        if projects:
            todo.append(f"the compose project {projects[0]!r} runs {compose_files['test']} here today: "
                        f"deploy.test runs beside it as {section['app_name']}-test on port {test['public_port']}; "
                        f"to take that stack over with its volumes instead, set deploy.environments.test.project: "
                        f"{projects[0]} and its public_port")
        names = {c.name: c for c in found}
        for service, name in sorted(fixed_names.items()):
            holder = names.get(name)
            if service == section["app_service"] or holder is None:
                continue
            todo.append(f"service {service}: container_name {name!r} is taken by a container of the compose project "
                        f"{holder.project or '(none)'}; a stack under another project name cannot create it: remove "
                        f"`container_name: {name}` from service {service} (compose names containers per project)")
        return todo
