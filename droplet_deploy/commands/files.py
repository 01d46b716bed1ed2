"""Small file operations on a target, as argv. Values are positional parameters of a constant script."""

from __future__ import annotations

# umask first: every directory made, parents included, is the owner's only (they hold env values, history and
# backups); one that exists already is left as it is.
_MKDIR_PRIVATE = 'umask 077 && exec mkdir -p -- "$@"'


def mkdir_p(*paths: str) -> list[str]:
    return ["sh", "-c", _MKDIR_PRIVATE, "mkdir-private", *paths]


def is_dir(path: str) -> list[str]:
    return ["test", "-d", path]


def is_file(path: str) -> list[str]:
    return ["test", "-f", path]


# Exit status of the lock scripts when the lock is held by someone else (or changed under us).
LOCK_HELD = 3

# The lock and its holder in one step: holder.json and the owner mark (``owner.<token>``, empty) are written into a
# fresh directory beside the lock, which is then renamed to the lock's name. rename(2) fails when the lock exists
# and is not empty, so two deploys cannot both win, and a kill at any point leaves either no lock or a lock naming
# its holder (plus a stray temp directory).
_LOCK_ACQUIRE = (
    'umask 077; tmp="$(mktemp -d "$1.new.XXXXXX")" || exit 1; '
    'if printf "%s\\n" "$2" > "$tmp/holder.json" && : > "$tmp/owner.$3" && [ ! -e "$1" ] '
    '&& mv -T -- "$tmp" "$1" 2>/dev/null; '
    'then exit 0; fi; rm -rf -- "$tmp"; exit 3'
)

# One probe, so the ages are measured on the target's own clock: its time now, the lock directory's mtime and
# holder.json's mtime (the heartbeat), then holder.json itself. "-" stands for what does not exist.
_LOCK_STATE = (
    'date +%s; stat -c %Y -- "$1" 2>/dev/null || echo -; stat -c %Y -- "$1/holder.json" 2>/dev/null || echo -; '
    'cat -- "$1/holder.json" 2>/dev/null; exit 0'
)

# Refresh the heartbeat (holder.json's mtime) only while the lock is still ours: its owner mark names our token.
# Exit 3: it is not ours any more (taken over, or removed).
_LOCK_HEARTBEAT = '[ -e "$1/owner.$2" ] || exit 3; touch -c -- "$1/holder.json"'

# Taking over an abandoned lock is one rename: its owner mark, named by the token that was judged abandoned, gets
# ours. Exactly one of several deploys taking it over at once wins (the source name exists once), and a lock that
# changed hands since it was judged has no mark of that name: exit 3. Only then is holder.json rewritten.
_LOCK_TAKE_OVER = (
    'mv -T -- "$1/owner.$2" "$1/owner.$3" 2>/dev/null || exit 3; '
    'printf "%s\\n" "$4" > "$1/.holder.$3" && mv -f -- "$1/.holder.$3" "$1/holder.json"'
)

# A lock without an owner mark (written before marks existed, or with no readable holder): removed only if its
# holder.json is still exactly what was read (none: ""), so a lock taken meanwhile by someone else survives. It is
# renamed away first: nobody ever sees a half-deleted lock.
_LOCK_REMOVE_IF = (
    'if [ -e "$1/holder.json" ]; then printf "%s" "$2" | cmp -s - "$1/holder.json" || exit 3; '
    'elif [ -n "$2" ]; then exit 3; fi; '
    'away="$(mktemp -u "$1.old.XXXXXX")" && mv -T -- "$1" "$away" && rm -rf -- "$away"'
)

# Release our own lock: our owner mark is renamed first (one step, so it can no longer be taken over as ours), then
# the lock is renamed away and removed; anyone else's is left alone.
_LOCK_RELEASE = (
    'mv -T -- "$1/owner.$2" "$1/released.$2" 2>/dev/null || exit 0; '
    'away="$(mktemp -u "$1.old.XXXXXX")" && mv -T -- "$1" "$away" && rm -rf -- "$away"'
)


def lock_acquire(lock_dir: str, holder_json: str, token: str) -> list[str]:
    """Create ``lock_dir`` holding ``holder.json`` and the owner mark of ``token`` atomically; exit ``LOCK_HELD``
    when it exists."""
    return ["sh", "-c", _LOCK_ACQUIRE, "lock-acquire", lock_dir, holder_json, token]


def lock_take_over(lock_dir: str, old_token: str, token: str, holder_json: str) -> list[str]:
    """Make the lock of ``old_token`` ours in one rename; exit ``LOCK_HELD`` when it is not that lock any more."""
    return ["sh", "-c", _LOCK_TAKE_OVER, "lock-take-over", lock_dir, old_token, token, holder_json]


def lock_state(lock_dir: str) -> list[str]:
    return ["sh", "-c", _LOCK_STATE, "lock-state", lock_dir]


def lock_heartbeat(lock_dir: str, token: str) -> list[str]:
    return ["sh", "-c", _LOCK_HEARTBEAT, "lock-heartbeat", lock_dir, token]


def lock_remove_if(lock_dir: str, holder_text: str) -> list[str]:
    """Remove ``lock_dir`` if its holder.json still reads ``holder_text``; exit ``LOCK_HELD`` if it changed."""
    return ["sh", "-c", _LOCK_REMOVE_IF, "lock-remove", lock_dir, holder_text]


def lock_release(lock_dir: str, token: str) -> list[str]:
    return ["sh", "-c", _LOCK_RELEASE, "lock-release", lock_dir, token]


# Written to disk before it returns (what is on disk can be lost to a crash otherwise); `sync FILE` where the
# system's sync takes one (coreutils), all of them where it does not.
FLUSH = '{ sync -- "$@" || sync; } 2>/dev/null'
# umask first: a new file is private from its first byte; chmod: a history made before that becomes private too.
# A last line cut short by a crash gets its newline first, so it never swallows the line appended after it.
_APPEND = ('umask 077; f="$2"; mkdir -p -- "$(dirname "$f")" || exit 1; '
           'if [ -s "$f" ] && [ -n "$(tail -c 1 -- "$f")" ]; then printf "\\n" >> "$f" || exit 1; fi; '
           'printf "%s\\n" "$1" >> "$f" && chmod 600 -- "$f" || exit 1; set -- "$f"; ' + FLUSH)

# The environment variable that marks every process a deploy starts on a host (``SshTarget.tag``): its value is
# the deploy's lock token, inherited by everything the command starts, so what is left of a deploy can be found.
RUN_TAG = "DROPLET_DEPLOY_RUN"

# Stop every process of this user marked with the tag: SIGTERM, up to 10 s to end, then SIGKILL. Prints how many
# were marked. Reads /proc only (Linux hosts, which is what the engine runs on).
_STOP_TAGGED = (
    'mark="$1=$2"; found=""; for p in /proc/[0-9]*; do pid="${p#/proc/}"; [ "$pid" = "$$" ] && continue; '
    'tr "\\000" "\\n" < "$p/environ" 2>/dev/null | grep -qxF -- "$mark" && found="$found $pid"; done; '
    'set -- $found; echo "$#"; [ "$#" -eq 0 ] && exit 0; kill -TERM "$@" 2>/dev/null; i=0; '
    'while [ "$i" -lt 20 ]; do alive=""; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done; '
    '[ -z "$alive" ] && exit 0; sleep 0.5; i=$((i + 1)); done; kill -KILL "$@" 2>/dev/null; exit 0'
)


def stop_tagged(tag: str) -> list[str]:
    """Stop what is still running of the deploy whose commands carry ``tag``; prints how many processes."""
    return ["sh", "-c", _STOP_TAGGED, "stop-tagged", RUN_TAG, tag]


def append_line(path: str, line: str) -> list[str]:
    return ["sh", "-c", _APPEND, "append", line, path]


def tail(path: str, lines: int) -> list[str]:
    return ["tail", "-n", str(lines), path]


def make_private_dir(path: str) -> list[str]:
    """Exclusive, and readable by the owner only from the start."""
    return ["mkdir", "-m", "700", "--", path]


# umask first: the copy is never readable by others, not even for a moment (it may be an env file).
_PRIVATE_COPY = 'umask 077; cp -- "$1" "$2"'


def copy_private(source: str, dest: str) -> list[str]:
    """Copy ``source`` to a new file ``dest`` readable by the owner only (mode 600)."""
    return ["sh", "-c", _PRIVATE_COPY, "copy-private", source, dest]


def remove_tree(path: str) -> list[str]:
    return ["rm", "-rf", "--", path]


def remove_file(path: str) -> list[str]:
    return ["rm", "-f", "--", path]

def rename(source: str, dest: str) -> list[str]:
    """Atomic on one filesystem; ``-T``: ``dest`` is the new name itself, never a directory to move into."""
    return ["mv", "-T", "--", source, dest]

def list_names(directory: str) -> list[str]:
    """Every entry, dot-names too (a temporary ``.incoming-`` release is one)."""
    return ["ls", "-1A", "--", directory]

def file_mode(path: str) -> list[str]:
    """Octal permission bits of ``path`` (following links); reads metadata only, never the contents."""
    return ["stat", "-L", "-c", "%a", "--", path]

def sha256(path: str) -> list[str]:
    """``path``'s sha256, computed on the target: the file's contents never leave it (an env file's secrets)."""
    return ["sha256sum", "--", path]


def clock() -> list[str]:
    return ["date", "+%s"]

def free_kib_nearest(path: str) -> list[str]:
    """``df`` of ``path``, or of its nearest existing parent before the first deploy creates it."""
    script = 'p="$1"; while [ ! -e "$p" ]; do p="$(dirname "$p")"; done; exec df -Pk "$p"'
    return ["sh", "-c", script, "df-nearest", path]


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
