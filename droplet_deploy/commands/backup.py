"""Backup commands. Scripts are constants; every value (paths, container names, user commands) arrives as a
positional parameter or a plain argv item, so nothing a user or a container controls is ever parsed as shell.
"""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands import files, postgres
from droplet_deploy.core.redact import display

# Runs inside the app container and writes the copy to stdout. SQLite's online backup API takes a consistent
# snapshot while the service keeps reading and writing (a plain copy of a live WAL database can tear). The copy
# is switched to a rollback journal so it is one self-contained file, and checked before anyone relies on it.
SNAPSHOT_SCRIPT = """\
import os, shutil, sqlite3, sys, tempfile, urllib.parse
src = sys.argv[1]
if not os.path.isfile(src):
    sys.stderr.write("no database file at %s\\n" % src)
    sys.exit(3)
fd, tmp = tempfile.mkstemp(suffix=".sqlite3")
os.close(fd)
try:
    try:
        live = sqlite3.connect("file:" + urllib.parse.quote(src) + "?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(tmp)
        live.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        copy.close()
        live.close()
    except sqlite3.Error as exc:
        sys.exit("snapshot of %s failed: %s" % (src, exc))
    if verdict != ["ok"]:
        sys.exit("snapshot of %s failed its integrity check: %s" % (src, "; ".join(verdict)[:300]))
    with open(tmp, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.buffer.flush()
finally:
    os.unlink(tmp)
"""

# SNAPSHOT_SCRIPT's exit status when db_path names no file: a setting to fix, not a failed copy.
NO_DATABASE_FILE = 3

# Runs inside the app container, reading the copy on stdin, as the app's own user (so any file SQLite creates
# stays writable by the app). Why the backup API into the live file: see deploy.backup.restore.
RESTORE_SCRIPT = """\
import hashlib, os, sqlite3, sys, tempfile, urllib.parse
dst, expected = sys.argv[1], sys.argv[2]
fd, tmp = tempfile.mkstemp(suffix=".sqlite3")
try:
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as f:
        while True:
            chunk = sys.stdin.buffer.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
    if digest.hexdigest() != expected:
        sys.exit("the copy arrived damaged (sha256 %s, expected %s)" % (digest.hexdigest(), expected))
    try:
        copy = sqlite3.connect("file:" + urllib.parse.quote(tmp) + "?mode=ro", uri=True)
        verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            sys.exit("the backup copy fails its integrity check: %s" % "; ".join(verdict)[:300])
        live = sqlite3.connect("file:" + urllib.parse.quote(dst) + "?mode=rwc", uri=True, timeout=30)
        copy.backup(live)
        verdict = [row[0] for row in live.execute("PRAGMA quick_check")]
        live.close()
        copy.close()
    except sqlite3.Error as exc:
        sys.exit("restore into %s failed: %s" % (dst, exc))
    if verdict != ["ok"]:
        sys.exit("%s fails its check after the restore: %s" % (dst, "; ".join(verdict)[:300]))
finally:
    os.unlink(tmp)
"""

# Read-only check of a stored copy, in a throwaway container (the host need not have Python).
# immutable=1: the copy sits on a read-only mount, so SQLite must not try to create lock or journal files.
INTEGRITY_SCRIPT = """\
import sqlite3, sys, urllib.parse
try:
    con = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?mode=ro&immutable=1", uri=True)
    verdict = [row[0] for row in con.execute("PRAGMA integrity_check")]
except sqlite3.Error as exc:
    verdict = [str(exc)]
print("; ".join(verdict)[:300])
sys.exit(0 if verdict == ["ok"] else 1)
"""

# The only redirects: stdout of a command into a file on the host, or a file into a command's stdin.
# umask first in everything that writes into a backup: its files are mode 600 from the first byte.
_STDOUT_TO_FILE = 'umask 077; out="$1"; shift; exec "$@" > "$out"'
# The logs kept in a backup: their last LOG_BYTES (an app that logged for months must not fill the disk), the
# command's own exit status kept through the pipe.
LOG_BYTES = 16 * 1024 * 1024
_LAST_BYTES_TO_FILE = ('umask 077; out="$1"; max="$2"; shift 2; '
                       '{ "$@" 2>&1; echo "$?" > "$out.status"; } | tail -c "$max" > "$out" || exit 1; '
                       'status="$(cat -- "$out.status")"; rm -f -- "$out.status"; exit "${status:-1}"')
_FILE_TO_STDIN = 'in="$1"; shift; exec "$@" < "$in"'
# A backup is written under a temporary name; the name it will be sealed under must not be taken already.
_CLAIM = '[ ! -e "$2" ] && mkdir -m 700 -- "$1"'
_SUMS = 'cd "$1" && shift && sha256sum -- "$@"'
_SIZES = 'cd "$1" && shift && stat -c "%s %n" -- "$@"'
_MANIFESTS = 'for d in "$1"/*/; do [ -f "$d/manifest.json" ] && printf "\\036%s\\n" "$d" && cat "$d/manifest.json"; done; exit 0'
_VERDICTS = ('for d in "$1"/*/; do [ -f "$d/verified.json" ] && printf "\\036%s\\n" "$d" && cat "$d/verified.json"; '
             'done; exit 0')

CHECK_MOUNT = "/backup"
_SCRIPT_NAMES = {SNAPSHOT_SCRIPT: "<sqlite-snapshot.py>", RESTORE_SCRIPT: "<sqlite-restore.py>",
                 INTEGRITY_SCRIPT: "<sqlite-check.py>", **postgres.script_names()}


def shown(argv: Sequence[str]) -> str:
    """The command as a shell line for progress output: constant scripts shown by name, credentials masked."""
    return display(argv, _SCRIPT_NAMES)


def claim_dir(incoming: str, final: str) -> list[str]:
    """Create ``incoming`` readable by the owner only, exclusively (two backups never share a directory), and
    only while no backup is sealed as ``final`` yet."""
    return ["sh", "-c", _CLAIM, "backup-claim", incoming, final]


# Every file on disk before the rename, and the rename itself after it: a backup is sealed only once it would
# survive a crash, since retention deletes older ones right after.
_SEAL = ('set -- "$1" "$2" "$(dirname "$2")"; '
         'find "$1" -type f -exec sh -c \'' + files.FLUSH + '\' flush {} + ; '
         'mv -T -- "$1" "$2" || exit 1; set -- "$2" "$3"; ' + files.FLUSH)


def seal(incoming: str, final: str) -> list[str]:
    """The rename that turns a complete backup into one (atomic; ``-T``: ``final`` is the new name itself), its
    files and the rename written to disk first."""
    return ["sh", "-c", _SEAL, "backup-seal", incoming, final]


def make_subdirs(directory: str, names: Sequence[str]) -> list[str]:
    return ["mkdir", "-m", "700", "-p", "--", *(f"{directory.rstrip('/')}/{name}" for name in names)]


def snapshot(db_path: str) -> list[str]:
    """The default backup command: an online SQLite copy of ``db_path``, on stdout."""
    return ["python3", "-c", SNAPSHOT_SCRIPT, db_path]


def restore_into(db_path: str, sha256: str) -> list[str]:
    """The default restore command: the copy on stdin (checked against ``sha256``) into the live ``db_path``."""
    return ["python3", "-c", RESTORE_SCRIPT, db_path, sha256]


def dump_with(container: str, command: Sequence[str], dest: str) -> list[str]:
    """A backup command run in the app container; its stdout becomes ``dest`` on the host."""
    return ["sh", "-c", _STDOUT_TO_FILE, "backup-dump", dest, "docker", "exec", container, *command]


def load_with(container: str, command: Sequence[str], src: str) -> list[str]:
    """A restore command run in the app container, reading ``src`` (on the host) on its stdin."""
    return ["sh", "-c", _FILE_TO_STDIN, "restore-dump", src, "docker", "exec", "--interactive", container, *command]


def save_logs(container: str, dest: str, limit: int = LOG_BYTES) -> list[str]:
    """The container's logs, stdout and stderr as they came, their last ``limit`` bytes."""
    return ["sh", "-c", _LAST_BYTES_TO_FILE, "backup-logs", dest, str(limit), "docker", "logs", "--timestamps",
            container]


def copy_private(src: str, dest: str) -> list[str]:
    return files.copy_private(src, dest)


def checksums(directory: str, files: Sequence[str]) -> list[str]:
    return ["sh", "-c", _SUMS, "backup-sums", directory, *files]


def sizes(directory: str, files: Sequence[str]) -> list[str]:
    return ["sh", "-c", _SIZES, "backup-sizes", directory, *files]


def list_dirs(base: str, *, older_than_minutes: int | None = None) -> list[str]:
    """Every directory in ``base`` (dot-names too), or only those unchanged for more than the given minutes."""
    age = ["-mmin", f"+{older_than_minutes}"] if older_than_minutes is not None else []
    return ["find", base, "-mindepth", "1", "-maxdepth", "1", "-type", "d", *age]


def read_manifests(base: str) -> list[str]:
    """Every sealed backup's manifest, each preceded by a record separator line naming its directory (the glob
    skips dot-names: a backup still being written is not one)."""
    return ["sh", "-c", _MANIFESTS, "backup-list", base]


def read_verdicts(base: str) -> list[str]:
    """Every sealed backup's last check (``verified.json``), each preceded by a line naming its directory."""
    return ["sh", "-c", _VERDICTS, "backup-verdicts", base]


def check_in_throwaway(image: str, directory: str, file: str) -> list[str]:
    """Integrity check of ``directory/file`` in a container of ``image``: no network, read-only, removed after.

    Root inside it, because the backup directory is private to the host user that made it.
    """
    return ["docker", "run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "python3",
            "--mount", _bind_readonly(directory, CHECK_MOUNT), image, "-c", INTEGRITY_SCRIPT, f"{CHECK_MOUNT}/{file}"]


def _bind_readonly(source: str, target: str) -> str:
    # --mount is CSV (a ':' in a path would break --volume); quote the field so a ',' stays inside it.
    field = f"source={source}"
    if any(ch in field for ch in ',"'):
        field = '"' + field.replace('"', '""') + '"'
    return f"type=bind,{field},target={target},readonly"
