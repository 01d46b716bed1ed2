"""Small file operations on a target, as argv. Values are positional parameters of a constant script."""

from __future__ import annotations


def mkdir_p(path: str) -> list[str]:
    return ["mkdir", "-p", path]


def mkdir_exclusive(path: str) -> list[str]:
    """Atomic create-or-fail: the basis of the deploy lock (two deploys cannot both succeed)."""
    return ["mkdir", path]


def append_line(path: str, line: str) -> list[str]:
    return ["sh", "-c", 'mkdir -p "$(dirname "$2")" && printf "%s\\n" "$1" >> "$2"', "append", line, path]


def tail(path: str, lines: int) -> list[str]:
    return ["tail", "-n", str(lines), path]


def remove_tree(path: str) -> list[str]:
    return ["rm", "-rf", "--", path]


def free_kib(path: str) -> list[str]:
    return ["df", "-Pk", path]
