"""PostgreSQL backup commands, run in the database service's container (``db_kind: postgres``). Pure builders.

The scripts are constants; the user and database arrive as positional parameters (empty: the container's own
``POSTGRES_USER``/``POSTGRES_DB``, read inside it, so the toolkit never reads the service's environment, which
holds its password). The dump is written to stdout and streamed off the container: nothing is copied onto its disk.
"""

from __future__ import annotations

from collections.abc import Iterable

# The exact row count of every table (an estimate from the statistics would not prove anything), one
# "<schema>.<table>\t<rows>" line each, in a stable order.
COUNTS_SQL = (
    "select quote_ident(table_schema) || '.' || quote_ident(table_name) || E'\\t' || "
    "(xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', table_schema, table_name), "
    "false, true, '')))[1]::text "
    "from information_schema.tables where table_type = 'BASE TABLE' "
    "and table_schema not in ('pg_catalog', 'information_schema') order by 1;"
)

# Prefix of a row-count line on stderr (the dump itself owns stdout).
ROWS_PREFIX = "droplet-deploy-rows "
DATABASE_PREFIX = "droplet-deploy-database "

# The dump and the row counts come from one snapshot: a read-only repeatable-read transaction exports it, counts
# its rows, and stays open while pg_dump --snapshot reads the same state, so writes that land meanwhile are in
# neither. psql runs as a co-process on two pipes in a private temporary directory (no data goes there).
_SETUP = """\
set -eu
user="${1:-${POSTGRES_USER:-postgres}}"
db="${2:-${POSTGRES_DB:-$user}}"
"""

DUMP_SCRIPT = _SETUP + """\
counts="$3"
dir="$(mktemp -d)"
pid=""
trap 'exec 3>&- 4<&- 2>/dev/null || true; [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkfifo "$dir/in" "$dir/out"
psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$user" -d "$db" <"$dir/in" >"$dir/out" &
pid=$!
exec 3>"$dir/in" 4<"$dir/out"
printf 'droplet-deploy-database %s\t%s\n' "$user" "$db" >&2
printf '%s\\n' 'begin transaction isolation level repeatable read read only;' 'select pg_export_snapshot();' >&3
read -r snapshot <&4
printf '%s\\n' "$counts" '\\echo droplet-deploy-end' >&3
while read -r line <&4; do
    [ "$line" = droplet-deploy-end ] && break
    printf 'droplet-deploy-rows %s\\n' "$line" >&2
done
pg_dump --format=custom --snapshot="$snapshot" -U "$user" -d "$db"
printf '%s\\n' 'commit;' '\\q' >&3
exec 3>&-
wait "$pid"
pid=""
"""

# The archive on stdin replaces the live database's objects in one transaction: a failure leaves it as it was.
RESTORE_SCRIPT = _SETUP + """\
exec pg_restore --clean --if-exists --single-transaction --exit-on-error -U "$user" -d "$db"
"""

# A scratch server is ready once it answers on TCP: the image's init phase runs a temporary server on the socket
# only, which must not be mistaken for the final one. Every wait has a deadline ($2 half-seconds).
_WAIT_SCRIPT = """\
i=0
until pg_isready -q -h 127.0.0.1 -U "$1"; do
    i=$((i + 1))
    [ "$i" -lt "$2" ] || { echo "the scratch server did not start" >&2; exit 1; }
    sleep 0.5
done
"""

_SCRIPT_NAMES = {DUMP_SCRIPT: "<pg-dump.sh>", RESTORE_SCRIPT: "<pg-restore.sh>", _WAIT_SCRIPT: "<pg-wait.sh>",
                 COUNTS_SQL: "<row-counts.sql>"}

# Where the official image (and the bootstrap-built one) keeps its data: the scratch volume is mounted there.
DATA_DIR = "/var/lib/postgresql/data"
SCRATCH_LABEL = "org.droplet-deploy.scratch"


def script_names() -> dict[str, str]:
    return dict(_SCRIPT_NAMES)


def dump(user: str | None, db: str | None) -> list[str]:
    """Run in the db container: the custom-format dump on stdout, row counts on stderr (``ROWS_PREFIX``)."""
    return ["sh", "-c", DUMP_SCRIPT, "pg-dump", user or "", db or "", COUNTS_SQL]


def restore(user: str | None, db: str | None) -> list[str]:
    """Run in the db container: a custom-format archive on stdin restored over the live database."""
    return ["sh", "-c", RESTORE_SCRIPT, "pg-restore", user or "", db or ""]


def parse_database(stderr: str) -> tuple[str, str] | None:
    """The user and database a dump ran as (the script prints them once resolved)."""
    for line in stderr.splitlines():
        if line.startswith(DATABASE_PREFIX):
            user, _, db = line[len(DATABASE_PREFIX):].partition("\t")
            return user, db
    return None


def parse_counts(stderr: str) -> dict[str, int]:
    """The row counts a dump printed: ``{"public.quotes": 3}``."""
    return parse_count_lines(line[len(ROWS_PREFIX):] for line in stderr.splitlines() if line.startswith(ROWS_PREFIX))


def parse_count_lines(lines: Iterable[str]) -> dict[str, int]:
    """``COUNTS_SQL``'s answer: one ``<table>\t<rows>`` per line."""
    counts = {}
    for line in lines:
        name, _, rows = line.rpartition("\t")
        if name and rows.isdigit():
            counts[name] = int(rows)
    return counts


def without_counts(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines()
                     if not line.startswith((ROWS_PREFIX, DATABASE_PREFIX)))


# -- the scratch server a verification restores into -------------------------------------------------------------

def create_volume(name: str) -> list[str]:
    return ["docker", "volume", "create", "--label", f"{SCRATCH_LABEL}=1", name]


def remove_volume(name: str) -> list[str]:
    return ["docker", "volume", "rm", "--force", name]


def start_scratch(name: str, image: str, volume: str, user: str, db: str) -> list[str]:
    """A server of ``image`` on ``volume`` with no network at all (so no port, published or not) and trust on
    its own loopback: nothing outside the container can reach it, and it needs no password."""
    return ["docker", "run", "--detach", "--name", name, "--label", f"{SCRATCH_LABEL}=1", "--network", "none",
            "--env", f"POSTGRES_USER={user}", "--env", f"POSTGRES_DB={db}",
            "--env", "POSTGRES_HOST_AUTH_METHOD=trust",
            "--mount", f"type=volume,source={volume},target={DATA_DIR}", image]


def wait_scratch(name: str, user: str, half_seconds: int) -> list[str]:
    return ["docker", "exec", name, "sh", "-c", _WAIT_SCRIPT, "pg-wait", user, str(half_seconds)]


def scratch_restore(user: str, db: str) -> list[str]:
    """Run in the scratch server: ``pg_restore`` of the archive on stdin; any error fails it."""
    return ["pg_restore", "--exit-on-error", "--no-owner", "-h", "127.0.0.1", "-U", user, "-d", db]


def count_scratch(name: str, user: str, db: str) -> list[str]:
    return ["docker", "exec", name, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-U", user, "-d", db, "-c", COUNTS_SQL]


def remove_scratch(name: str) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", name]
