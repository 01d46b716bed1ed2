"""Release directories on a host: create, unpack, rename, list and remove. argv only, no I/O."""

from __future__ import annotations

# Compose writes the directory it ran in onto every container it creates: that is how a release is "in use".
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"


def make_release_dir(path: str) -> list[str]:
    """Exclusive: two deploys in the same second never unpack into one directory."""
    return ["mkdir", "--", path]


def unpack(archive: str, into: str) -> list[str]:
    return ["tar", "-xzf", archive, "-C", into]


def working_dirs(project: str) -> list[str]:
    """One line per container of the compose project: working directory, state, service."""
    fmt = "{{.Label \"" + WORKING_DIR_LABEL + "\"}}\t{{.State}}\t{{.Label \"com.docker.compose.service\"}}"
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--format", fmt]
