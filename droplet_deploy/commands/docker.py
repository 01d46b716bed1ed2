"""docker CLI commands (engine side: images, containers, exec)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence

REVISION_LABEL = "org.opencontainers.image.revision"
# On every image the toolkit builds, naming the app: deploy.clean finds its dangling build images by it.
BUILT_FOR_LABEL = "droplet-deploy.app"


def server_version() -> list[str]:
    """Reaches the engine like `docker info`, without `info`'s walk over every CLI plugin (several times faster)."""
    return ["docker", "version", "--format", "{{.Server.Version}}"]


def build(*, image: str, revision: str, context: str, dockerfile: str, build_args: Mapping[str, str],
          target: str | None = None, no_cache: bool = False, labels: Mapping[str, str] | None = None,
          from_environment: Collection[str] = ()) -> list[str]:
    """``from_environment``: build args given by name only, ``docker build`` taking their values from its
    environment (``with_values_from``), so that no value is in its command line."""
    # --force-rm: the classic builder otherwise leaves the failed step's container behind on every broken build.
    argv = ["docker", "build", "--force-rm", "--file", dockerfile, "--tag", image]
    for key, value in sorted({REVISION_LABEL: revision, **(labels or {})}.items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted({**build_args, "REVISION": revision}.items()):
        argv += ["--build-arg", key if key in from_environment else f"{key}={value}"]
    if target:
        argv += ["--target", target]
    if no_cache:
        argv.append("--no-cache")
    argv.append(context)
    return argv


def image_inspect(image: str, fmt: str = "{{json .}}") -> list[str]:
    return ["docker", "image", "inspect", "--format", fmt, image]


def images(repository: str) -> list[str]:
    return ["docker", "image", "ls", repository, "--format", "{{json .}}"]


def dangling_images(app_name: str) -> list[str]:
    """Untagged images the toolkit built for ``app_name`` (a tag moved on when the same revision was rebuilt)."""
    return ["docker", "image", "ls", "--quiet", "--no-trunc", "--filter", "dangling=true", "--filter",
            f"label={BUILT_FOR_LABEL}={app_name}"]


def project_volumes(project: str) -> list[str]:
    """The volumes compose made for ``project`` (its project label), by name."""
    return ["docker", "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={project}"]


def volume_users(volume: str) -> list[str]:
    """The names of the running containers that mount ``volume``."""
    return ["docker", "ps", "--format", "{{.Names}}", "--filter", f"volume={volume}"]


def remove_volume(volume: str) -> list[str]:
    return ["docker", "volume", "rm", volume]


def image_sizes(images: Sequence[str]) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Size}}", *images]


def remove_images(images: Sequence[str]) -> list[str]:
    return ["docker", "image", "rm", *images]


def run_once(image: str, command: Sequence[str], *, entrypoint: str | None = None, user: str | None = None,
             env: Mapping[str, str] | None = None) -> list[str]:
    """A throwaway container: no network, removed on exit, for checks inside an image."""
    argv = ["docker", "run", "--rm", "--network", "none"]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    if user is not None:
        argv += ["--user", user]
    for key, value in sorted((env or {}).items()):
        argv += ["--env", f"{key}={value}"]
    return argv + [image, *command]


def containers(project: str, service: str | None = None, *, all_states: bool = False) -> list[str]:
    """The project's service containers. One-off containers (``compose run``: a release hook, ``deploy.exec``)
    carry the service's label too, but never serve: they are left out."""
    argv = ["docker", "ps", "--no-trunc", "--format", "{{json .}}",
            "--filter", f"label=com.docker.compose.project={project}",
            "--filter", "label=com.docker.compose.oneoff=False"]
    if service:
        argv += ["--filter", f"label=com.docker.compose.service={service}"]
    if all_states:
        argv.append("--all")
    return argv


# One line per container: what a takeover needs to know of a compose stack it did not start.
COMPOSE_LINE = ('{{.ID}}\t{{.Names}}\t{{.Label "com.docker.compose.project"}}\t'
                '{{.Label "com.docker.compose.service"}}\t{{.Label "com.docker.compose.project.config_files"}}')


def publishing(port: int) -> list[str]:
    """Running containers that publish ``port`` on the host, any project (``COMPOSE_LINE``)."""
    return ["docker", "ps", "--no-trunc", "--filter", f"publish={port}", "--format", COMPOSE_LINE]


def compose_containers() -> list[str]:
    """Every container a compose project made, running or not (``COMPOSE_LINE``)."""
    return ["docker", "ps", "--all", "--no-trunc", "--filter", "label=com.docker.compose.project",
            "--format", COMPOSE_LINE]


def compose_volumes() -> list[str]:
    """Every volume a compose project made: its name, project and the key the compose file gave it."""
    return ["docker", "volume", "ls", "--filter", "label=com.docker.compose.project", "--format",
            '{{.Name}}\t{{.Label "com.docker.compose.project"}}\t{{.Label "com.docker.compose.volume"}}']


def copy_into(container: str, source: str, dest: str) -> list[str]:
    """A file of the target into a container, created or running (``docker cp``)."""
    return ["docker", "cp", source, f"{container}:{dest}"]


def start(containers: Sequence[str]) -> list[str]:
    return ["docker", "start", *containers]


def inspect(containers: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *containers]


def exec_(container: str, command: Sequence[str]) -> list[str]:
    return ["docker", "exec", container, *command]


def stop(containers: Sequence[str], *, timeout: int) -> list[str]:
    return ["docker", "stop", "--time", str(timeout), *containers]


def remove(containers: Sequence[str], *, force: bool = False) -> list[str]:
    return ["docker", "rm", *(["--force"] if force else []), *containers]


def log_options(*, since: str | None = None, tail: int | None = None, follow: bool = False,
                timestamps: bool = False) -> list[str]:
    """The flags `docker logs` and `docker compose logs` share."""
    argv = []
    if since:
        argv += ["--since", since]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if follow:
        argv.append("--follow")
    if timestamps:
        argv.append("--timestamps")
    return argv


def logs(container: str, *, since: str | None = None, tail: int | None = None, follow: bool = False,
         timestamps: bool = False) -> list[str]:
    return ["docker", "logs", *log_options(since=since, tail=tail, follow=follow, timestamps=timestamps), container]


# Names whose value in docker's own environment would change what docker or the shell does: passed inline.
_NOT_FROM_ENVIRONMENT = re.compile(r"^(?:DOCKER_|BUILDKIT_|BUILDX_|COMPOSE_|LD_)|^(?:PATH|HOME|IFS|ENV|BASH_ENV|"
                                   r"SHELL|PS4|TMPDIR|[A-Za-z]+_PROXY)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The values file is read and removed before the command starts: the values live in its environment only
# (readable by its user alone, unlike a command line, which every user of the host sees in `ps`).
# (The trap: a file the shell cannot read ends it, and it is removed then too.)
_WITH_VALUES = ('f="$1"; shift; trap \'rm -f -- "$f"\' EXIT; set -a; . "$f" || exit 1; set +a; rm -f -- "$f"; '
                'trap - EXIT; exec "$@"')


def environment_names(build_args: Mapping[str, str]) -> list[str]:
    """The build args whose values can go through the environment: shell names that mean nothing to docker."""
    return sorted(k for k in build_args if _IDENTIFIER.match(k) and not _NOT_FROM_ENVIRONMENT.match(k))


def values_file(values: Mapping[str, str]) -> str:
    """The text of a values file: shell assignments, each value quoted."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(values.items()))


def with_values_from(path: str, command: Sequence[str]) -> list[str]:
    """``command`` with the assignments of the file at ``path`` (absolute) in its environment; the file removed."""
    return ["sh", "-c", _WITH_VALUES, "with-values", path, *command]
