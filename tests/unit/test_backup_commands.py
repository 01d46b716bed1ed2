"""Backup argv builders render exact commands with constant scripts; the scripts themselves run for real here
(this machine's Python and SQLite stand in for the app container's, which run the very same text)."""

import csv
import hashlib
import os
import shlex
import sqlite3
import subprocess
import sys

import pytest

from droplet_deploy.commands import backup as cmd
from droplet_deploy.transport.target import command_line

HOSTILE = "x; rm -rf / #$(touch /tmp/pwned) `id` \"'"
SCRIPTS = (cmd.SNAPSHOT_SCRIPT, cmd.RESTORE_SCRIPT, cmd.INTEGRITY_SCRIPT)


def test_dump_runs_the_command_in_the_container_and_redirects_on_the_host():
    argv = cmd.dump_with("abc123", ["pg_dump", "--format=custom", "shop"], "/srv/b/1/database.dump")
    assert argv == ["sh", "-c", 'umask 077; out="$1"; shift; exec "$@" > "$out"', "backup-dump", "/srv/b/1/database.dump",
                    "docker", "exec", "abc123", "pg_dump", "--format=custom", "shop"]


def test_load_feeds_the_file_to_the_command_on_stdin():
    argv = cmd.load_with("abc123", ["pg_restore", "--clean", "-d", "shop"], "/srv/b/1/database.dump")
    assert argv == ["sh", "-c", 'in="$1"; shift; exec "$@" < "$in"', "restore-dump", "/srv/b/1/database.dump",
                    "docker", "exec", "--interactive", "abc123", "pg_restore", "--clean", "-d", "shop"]


def test_default_commands_carry_the_db_path_and_checksum_as_arguments():
    assert cmd.snapshot("/data/app.db") == ["python3", "-c", cmd.SNAPSHOT_SCRIPT, "/data/app.db"]
    assert cmd.restore_into("/data/app.db", "f" * 64) == ["python3", "-c", cmd.RESTORE_SCRIPT, "/data/app.db",
                                                          "f" * 64]


def test_everything_written_into_a_backup_is_private_from_the_first_byte():
    argv = cmd.copy_private(".env", "/srv/b/1/config/.env")
    assert argv[2].startswith("umask 077;") and argv[-2:] == [".env", "/srv/b/1/config/.env"]
    for writer in (cmd.dump_with("c", ["pg_dump"], "/b/x"), cmd.save_logs("c", "/b/logs/app.log")):
        assert writer[2].startswith("umask 077;")
    assert cmd.make_subdirs("/srv/b/1/", ["logs", "config"]) == ["mkdir", "-m", "700", "-p", "--", "/srv/b/1/logs",
                                                                  "/srv/b/1/config"]


def test_a_backup_is_claimed_under_a_temporary_name_and_sealed_by_a_rename(tmp_path):
    """Run for real: the claim is exclusive and refuses an id already sealed."""
    incoming, final = str(tmp_path / ".incoming-1"), str(tmp_path / "1")
    assert subprocess.run(cmd.claim_dir(incoming, final)).returncode == 0
    assert oct(os.stat(incoming).st_mode & 0o777) == "0o700"
    assert subprocess.run(cmd.claim_dir(incoming, final), stderr=subprocess.DEVNULL).returncode != 0
    assert subprocess.run(cmd.seal(incoming, final)).returncode == 0
    assert os.path.isdir(final) and not os.path.exists(incoming)
    assert subprocess.run(cmd.claim_dir(incoming, final)).returncode != 0, "that id is sealed already"
    assert not os.path.exists(incoming)


def test_logs_keep_both_streams_with_timestamps():
    argv = cmd.save_logs("abc123", "/srv/b/1/logs/app.log")
    assert argv[-4:] == ["docker", "logs", "--timestamps", "abc123"] and "2>&1" in argv[2]


@pytest.mark.parametrize("argv", [
    cmd.dump_with(HOSTILE, [HOSTILE], HOSTILE), cmd.load_with(HOSTILE, [HOSTILE], HOSTILE),
    cmd.save_logs(HOSTILE, HOSTILE), cmd.copy_private(HOSTILE, HOSTILE), cmd.checksums(HOSTILE, [HOSTILE]),
    cmd.sizes(HOSTILE, [HOSTILE]), cmd.read_manifests(HOSTILE), cmd.claim_dir(HOSTILE, HOSTILE),
])
def test_hostile_values_are_parameters_never_script(argv):
    assert argv[:2] == ["sh", "-c"] and HOSTILE not in argv[2]
    assert shlex.split(command_line(argv)) == argv


def test_hostile_paths_stay_whole_in_the_throwaway_check_mount():
    directory = '/srv/my,dir/"quoted"'
    argv = cmd.check_in_throwaway("shop:abc", directory, "database.sqlite3")
    assert argv[:9] == ["docker", "run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "python3"]
    mount = argv[argv.index("--mount") + 1]
    fields = next(csv.reader([mount]))
    assert fields == ["type=bind", f"source={directory}", "target=/backup", "readonly"]
    assert argv[-4:] == ["shop:abc", "-c", cmd.INTEGRITY_SCRIPT, "/backup/database.sqlite3"]


def test_progress_output_names_the_scripts_instead_of_printing_them():
    shown = cmd.shown(cmd.dump_with("abc", cmd.snapshot("/data/app.db"), "/b/database.sqlite3"))
    assert shown.endswith("docker exec abc python3 -c <sqlite-snapshot.py> /data/app.db")
    assert all(script not in shown for script in SCRIPTS)


# -- the scripts, run for real ---------------------------------------------------------------------------

def live_database(path, rows):
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE quotes (id INTEGER PRIMARY KEY, text TEXT)")
    con.executemany("INSERT INTO quotes (text) VALUES (?)", [(r,) for r in rows])
    con.commit()
    return con  # left open, as the running app would


def run(argv, stdin=b""):
    return subprocess.run([sys.executable, *argv[1:]], input=stdin, capture_output=True)  # argv[0] is python3


def test_snapshot_of_a_live_wal_database_is_one_consistent_self_contained_file(tmp_path):
    live = live_database(tmp_path / "app.db", ["one", "two"])
    live.execute("INSERT INTO quotes (text) VALUES ('in the wal only')")
    live.commit()
    result = run(cmd.snapshot(str(tmp_path / "app.db")))
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(result.stdout)
    con = sqlite3.connect(copy)
    assert [r[0] for r in con.execute("SELECT text FROM quotes ORDER BY id")] == ["one", "two", "in the wal only"]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert list(tmp_path.glob("copy.sqlite3-*")) == []


def test_snapshot_of_a_missing_database_fails_with_its_own_status_instead_of_creating_one(tmp_path):
    result = run(cmd.snapshot(str(tmp_path / "gone.db")))
    assert result.returncode == cmd.NO_DATABASE_FILE and result.stdout == b""
    assert result.stderr.decode().strip() == f"no database file at {tmp_path / 'gone.db'}"
    assert not (tmp_path / "gone.db").exists()


def test_snapshot_of_a_file_that_is_no_database_is_a_failed_copy(tmp_path):
    (tmp_path / "notes.txt").write_text("not sqlite\n" * 100)
    result = run(cmd.snapshot(str(tmp_path / "notes.txt")))
    assert result.returncode == 1 and b"snapshot of" in result.stderr and result.stdout == b""


def test_restore_replaces_the_live_data_under_an_open_connection(tmp_path):
    live_database(tmp_path / "backup.db", ["kept one", "kept two"]).close()
    copy = run(cmd.snapshot(str(tmp_path / "backup.db"))).stdout
    app = live_database(tmp_path / "app.db", ["written after the backup"])
    result = run(cmd.restore_into(str(tmp_path / "app.db"), hashlib.sha256(copy).hexdigest()), stdin=copy)
    assert result.returncode == 0, result.stderr
    assert [r[0] for r in app.execute("SELECT text FROM quotes ORDER BY id")] == ["kept one", "kept two"]
    assert app.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_restore_into_a_fresh_empty_volume_creates_the_database(tmp_path):
    live_database(tmp_path / "backup.db", ["only"]).close()
    copy = run(cmd.snapshot(str(tmp_path / "backup.db"))).stdout
    result = run(cmd.restore_into(str(tmp_path / "new.db"), hashlib.sha256(copy).hexdigest()), stdin=copy)
    assert result.returncode == 0, result.stderr
    assert sqlite3.connect(tmp_path / "new.db").execute("SELECT text FROM quotes").fetchall() == [("only",)]


def test_restore_refuses_a_copy_damaged_on_the_way_and_leaves_the_live_data(tmp_path):
    live_database(tmp_path / "backup.db", ["x"]).close()
    copy = bytearray(run(cmd.snapshot(str(tmp_path / "backup.db"))).stdout)
    expected = hashlib.sha256(copy).hexdigest()
    copy[0] ^= 0xFF
    app = live_database(tmp_path / "app.db", ["live"])
    result = run(cmd.restore_into(str(tmp_path / "app.db"), expected), stdin=bytes(copy))
    assert result.returncode == 1 and b"arrived damaged" in result.stderr
    assert app.execute("SELECT text FROM quotes").fetchall() == [("live",)]


def test_integrity_script_says_ok_or_what_is_wrong(tmp_path):
    live_database(tmp_path / "good.db", ["x"]).close()
    good = run(cmd.snapshot(str(tmp_path / "good.db"))).stdout
    (tmp_path / "copy.sqlite3").write_bytes(good)
    ok = run(["python3", "-c", cmd.INTEGRITY_SCRIPT, str(tmp_path / "copy.sqlite3")])
    assert (ok.returncode, ok.stdout.strip()) == (0, b"ok")
    bad = bytearray(good)
    bad[0] ^= 0xFF
    (tmp_path / "copy.sqlite3").write_bytes(bytes(bad))
    broken = run(["python3", "-c", cmd.INTEGRITY_SCRIPT, str(tmp_path / "copy.sqlite3")])
    assert broken.returncode == 1 and b"not a database" in broken.stdout


def test_logs_kept_in_a_backup_are_their_last_bytes_and_keep_the_commands_status(tmp_path):
    """Run for real, the log command standing in for `docker logs`: a container that logged far more than the bound
    leaves a file of the bound's size, its latest lines (stderr too), and the command's own exit status."""
    dest = tmp_path / "app.log"
    script = cmd.save_logs("abc123", str(dest), limit=4096)[:6]
    noisy = ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done; echo last-words >&2; exit 3"]
    ran = subprocess.run([*script, *noisy])
    assert ran.returncode == 3
    text = dest.read_text()
    assert len(text.encode()) == 4096 and text.endswith("line 19999\nlast-words\n")
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600" and sorted(os.listdir(tmp_path)) == ["app.log"]
    assert subprocess.run([*script, "true"]).returncode == 0
