"""Release directories on a host: create, unpack, rename, list and remove. argv only, no I/O."""

from __future__ import annotations

# Compose writes the directory it ran in onto every container it creates: that is how a release is "in use".
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"


def make_dirs(*paths: str) -> list[str]:
    return ["mkdir", "-p", "--", *paths]


def make_release_dir(path: str) -> list[str]:
    """Exclusive: two deploys in the same second never unpack into one directory."""
    return ["mkdir", "--", path]


def unpack(archive: str, into: str) -> list[str]:
    return ["tar", "-xzf", archive, "-C", into]


def remove_file(path: str) -> list[str]:
    return ["rm", "-f", "--", path]


def rename_dir(source: str, dest: str) -> list[str]:
    """Atomic on one filesystem; ``-T``: ``dest`` is the new name itself, never a directory to move into."""
    return ["mv", "-T", "--", source, dest]


def list_names(directory: str) -> list[str]:
    """Every entry, dot-names too (a temporary ``.incoming-`` release is one)."""
    return ["ls", "-1A", "--", directory]


def file_mode(path: str) -> list[str]:
    """Octal permission bits of ``path`` (following links); reads metadata only, never the contents."""
    return ["stat", "-L", "-c", "%a", "--", path]


def is_dir(path: str) -> list[str]:
    return ["test", "-d", path]


def working_dirs(project: str) -> list[str]:
    """One line per container of the compose project: working directory, state, service."""
    fmt = "{{.Label \"" + WORKING_DIR_LABEL + "\"}}\t{{.State}}\t{{.Label \"com.docker.compose.service\"}}"
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--format", fmt]


def free_kib_nearest(path: str) -> list[str]:
    """``df`` of ``path``, or of its nearest existing parent before the first deploy creates it."""
    script = 'p="$1"; while [ ! -e "$p" ]; do p="$(dirname "$p")"; done; exec df -Pk "$p"'
    return ["sh", "-c", script, "df-nearest", path]


def clock() -> list[str]:
    return ["date", "+%s"]


def remove_tree(path: str) -> list[str]:
    return ["rm", "-rf", "--", path]
