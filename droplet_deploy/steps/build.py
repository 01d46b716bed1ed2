"""Build the image for one revision: tagged ``<app>:<sha12>``, labelled with the full revision.

The layer cache is used (fast); freshness is proven afterwards by ``verify.build`` and by the running app
reporting the revision, not by throwing the cache away. ``--no-cache`` remains for when you want it.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable

from droplet_deploy.commands import docker, files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.redact import display
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transport.target import Target


def build_image(target: Target, settings: Settings, revision: Revision, *, no_cache: bool = False,
                context_dir: str | None = None, progress: Callable[[str], None] | None = None) -> str:
    """Build on ``target`` from ``context_dir`` (default: the configured context under the target's cwd);
    ``progress`` gets each line of the build's output while it is not shown (a terminal's live line)."""
    image = settings.image(revision.tag)
    context = context_dir or settings.context
    hidden = docker.environment_names(settings.build_args)
    argv = docker.build(image=image, revision=revision.full, context=context,
                        dockerfile=posixpath.join(context, settings.dockerfile), build_args=settings.build_args,
                        target=settings.build_target, no_cache=no_cache, from_environment=hidden)
    if not hidden:
        target.run(argv, stream=True, progress=progress)
        return image
    # The values reach docker through a private file and its environment, never its command line (`ps`).
    values = posixpath.join(settings.state_path, f".build-args-{uuid.uuid4().hex}")
    target.run(files.mkdir_p(settings.state_path), does=f"create the state directory {settings.state_path}")
    target.write_text(values, docker.values_file({k: settings.build_args[k] for k in hidden}), mode=0o600)
    try:
        target.run(docker.with_values_from(values, argv), stream=True, progress=progress, shown=display(argv),
                   does=display(argv))
    finally:
        target.run(files.remove_file(values), check=False, does="remove the build args' values file")
    return image
