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


# The bytes arrive on stdin and land under a temporary name that only becomes ``$1`` once all ``$3`` bytes are
# there and it has its mode, so a reader never sees half a file, not even after an interrupted transfer (the host
# sees end-of-input then too). umask first: nothing is ever readable by others, not even for a moment.
_RECEIVE = ('tmp="$1.incoming"; umask 077; '
            'if cat > "$tmp" && [ "$(wc -c < "$tmp")" -eq "$3" ] && chmod "$2" "$tmp" && mv -f -- "$tmp" "$1"; '
            'then exit 0; fi; rm -f -- "$tmp"; echo "receive: $1: incomplete or not writable" >&2; exit 1')


def receive(path: str, mode: int, size: int) -> list[str]:
    """Write ``size`` bytes from stdin to ``path`` with ``mode`` (octal bits), atomically: uploads without an
    SFTP subsystem."""
    return ["sh", "-c", _RECEIVE, "receive", path, format(mode, "o"), str(size)]


def send(path: str) -> list[str]:
    """``path``'s bytes on stdout: downloads without an SFTP subsystem."""
    return ["cat", "--", path]
