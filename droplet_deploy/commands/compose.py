"""docker compose commands for one project, v2 (`docker compose`) or v1 (`docker-compose`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from droplet_deploy.commands.docker import log_options


def version(binary: Sequence[str]) -> list[str]:
    return [*binary, "version", "--short"]


@dataclass(frozen=True)
class Compose:
    """One compose project. ``variables`` feed the file's ${...} interpolation (image tag, port, proxy image)."""

    project: str
    file: str
    binary: tuple[str, ...] = ("docker", "compose")
    variables: Mapping[str, str] = field(default_factory=dict)
    # Files merged over ``file``, in order (the toolkit's per-release override: droplet_deploy/engines/compose/override.py).
    overrides: tuple[str, ...] = ()
    # Where relative paths in the files resolve (default: the first file's directory).
    project_directory: str | None = None

    def _base(self) -> list[str]:
        # `env` passes interpolation variables the same way locally and over SSH, visibly in a dry run,
        # without relying on the server's AcceptEnv.
        prefix = ["env", *(f"{k}={v}" for k, v in sorted(self.variables.items()))] if self.variables else []
        files = [arg for name in (self.file, *self.overrides) for arg in ("--file", name)]
        directory = ["--project-directory", self.project_directory] if self.project_directory else []
        return [*prefix, *self.binary, "--project-name", self.project, *directory, *files]

    def config(self, *, quiet: bool = True) -> list[str]:
        return [*self._base(), "config", *(["--quiet"] if quiet else [])]

    def services(self) -> list[str]:
        return [*self._base(), "config", "--services"]

    def up(self, services: Sequence[str] = (), *, no_deps: bool = False, no_recreate: bool = False,
           force_recreate: bool = False, scale: Mapping[str, int] | None = None,
           remove_orphans: bool = False) -> list[str]:
        argv = [*self._base(), "up", "--detach"]
        if no_deps:
            argv.append("--no-deps")
        if no_recreate:
            argv.append("--no-recreate")
        if force_recreate:
            argv.append("--force-recreate")
        if remove_orphans:
            argv.append("--remove-orphans")
        for service, count in sorted((scale or {}).items()):
            argv += ["--scale", f"{service}={count}"]
        return argv + list(services)

    def create(self, services: Sequence[str], *, scale: Mapping[str, int] | None = None) -> list[str]:
        """Create the services' containers without starting them or their dependencies: a start later is then
        only ``docker start`` (the port handover keeps its gap to that; a rollout creates the new app container
        while verify.build runs)."""
        argv = [*self._base(), "up", "--no-start", "--no-deps", "--no-recreate"]
        for service, count in sorted((scale or {}).items()):
            argv += ["--scale", f"{service}={count}"]
        return argv + list(services)

    def stop(self, services: Sequence[str] = (), *, timeout: int | None = None) -> list[str]:
        argv = [*self._base(), "stop"]
        if timeout is not None:
            argv += ["--timeout", str(timeout)]
        return argv + list(services)

    def start(self, services: Sequence[str] = ()) -> list[str]:
        return [*self._base(), "start", *services]

    def restart(self, services: Sequence[str] = (), *, timeout: int | None = None) -> list[str]:
        argv = [*self._base(), "restart"]
        if timeout is not None:
            argv += ["--timeout", str(timeout)]
        return argv + list(services)

    def logs(self, services: Sequence[str] = (), *, since: str | None = None, tail: int | None = None,
             follow: bool = False, timestamps: bool = False) -> list[str]:
        options = log_options(since=since, tail=tail, follow=follow, timestamps=timestamps)
        return [*self._base(), "logs", "--no-color", *options, *services]

    def run(self, service: str, command: Sequence[str], *, tty: bool = False) -> list[str]:
        """A one-off container of ``service`` with its environment, volumes and networks: no dependencies, removed
        on exit. No TTY unless ``tty`` (a person at a terminal: compose then attaches one, stdin included)."""
        return [*self._base(), "run", "--rm", "--no-deps", *([] if tty else ["-T"]), service, *command]
