"""Build the images of one revision: the app's, tagged ``<app>:<sha12>``, and one for every other service the
compose file builds (``build:``), tagged ``<app>-<service>:<sha12>``; each labelled with the full revision.

The layer cache is used (fast); freshness is proven afterwards by ``verify.build`` and by the running app
reporting the revision, not by throwing the cache away. ``--no-cache`` remains for when you want it.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from droplet_deploy.commands import docker, files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.core.redact import display
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transport.target import Target

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class ServiceBuild:
    """A service of the compose file with a ``build:`` of its own: what the toolkit builds for it, with paths
    relative to where the build runs (the project, or the release directory on a host)."""

    service: str
    context: str
    dockerfile: str
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)


def service_repository(settings: Settings, service: str) -> str:
    """Where a service's own images go: beside the app's, so retention finds them by the app's name."""
    return f"{settings.app_name}-{service.lower()}"


def service_image(settings: Settings, service: str, tag: str) -> str:
    return f"{service_repository(settings, service)}:{tag}"


def build_image(target: Target, settings: Settings, revision: Revision, *, no_cache: bool = False,
                context_dir: str | None = None, progress: Progress = None) -> str:
    """Build on ``target`` from ``context_dir`` (default: the configured context under the target's cwd);
    ``progress`` gets each line of the build's output while it is not shown (a terminal's live line)."""
    image = settings.image(revision.tag)
    context = context_dir or settings.context
    _build(target, settings, image, revision, context=context,
           dockerfile=posixpath.join(context, settings.dockerfile), build_args=settings.build_args,
           stage=settings.build_target, no_cache=no_cache, progress=progress)
    return image


def build_service(target: Target, settings: Settings, revision: Revision, build: ServiceBuild, *,
                  no_cache: bool = False, progress: Progress = None) -> str:
    """A service's own image at ``revision``: the configured build args, then the compose file's for it."""
    image = service_image(settings, build.service, revision.tag)
    _build(target, settings, image, revision, context=build.context, dockerfile=build.dockerfile,
           build_args={**settings.build_args, **build.args}, stage=build.target, no_cache=no_cache,
           progress=progress)
    return image


def _build(target: Target, settings: Settings, image: str, revision: Revision, *, context: str, dockerfile: str,
           build_args: Mapping[str, str], stage: str | None, no_cache: bool, progress: Progress) -> None:
    hidden = docker.environment_names(build_args)
    argv = docker.build(image=image, revision=revision.full, context=context, dockerfile=dockerfile,
                        build_args=build_args, target=stage, no_cache=no_cache,
                        labels={docker.BUILT_FOR_LABEL: settings.app_name}, from_environment=hidden)
    if not hidden:
        target.run(argv, stream=True, progress=progress)
        return
    # The values reach docker through a private file and its environment, never its command line (`ps`).
    values = posixpath.join(settings.state_path, f".build-args-{uuid.uuid4().hex}")
    target.run(files.mkdir_p(settings.state_path), does=f"create the state directory {settings.state_path}")
    target.write_text(values, docker.values_file({k: build_args[k] for k in hidden}), mode=0o600)
    try:
        target.run(docker.with_values_from(values, argv), stream=True, progress=progress, shown=display(argv),
                   does=display(argv))
    except CommandFailed as exc:  # name the build, not the wrapper that hands it the values
        raise CommandFailed(argv, exc.exit_status, exc.stderr, where=exc.where) from None
    finally:
        target.run(files.remove_file(values), check=False, does="remove the build args' values file")
