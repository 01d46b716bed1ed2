"""Backups of the reference app on the real Docker engine, run as users run them (the `inv` command).

Data goes in through the app's HTTP API and must come back out through it after the volume is destroyed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import threading
import time

import pytest
import requests

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

SECRET = "s3cret-value-that-must-never-be-printed"


def add_quotes(project, *texts: str) -> None:
    for text in texts:
        answer = requests.post(project.url + "/api/quotes", json={"text": text, "author": "test"}, timeout=10)
        assert answer.status_code == 201, answer.text


def quotes(project) -> list[str]:
    answer = project.get("/api/quotes")
    assert answer.status_code == 200, answer.text
    return [q["text"] for q in answer.json()["quotes"]]


def backups_dir(project, env: str = "test"):
    return project.path / "backups" / env


def backup_ids(project) -> list[str]:
    found = backups_dir(project)
    return sorted(p.name for p in found.iterdir()) if found.exists() else []


def take_backup(project, *args: str) -> str:
    """`inv backup`, returning the id from its one summary line."""
    before = set(backup_ids(project))
    result = project.inv("backup", *args)
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    (new,) = set(backup_ids(project)) - before
    assert line.startswith(f"backup {new}: ") and " in " in line, line
    return new


def flip_byte(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_round_trip_data_survives_a_destroyed_volume(project, tmp_path):
    project.write(".env", f"APP_SECRET_KEY={SECRET}\n")  # git ignores it: the tree stays clean
    project.configure(environments={"test": {"env_file": ".env"}})
    project.inv("deploy.test")
    add_quotes(project, "first", "second", "third")

    started = time.monotonic()
    backup_id = take_backup(project, "--download", str(tmp_path / "downloads"))
    elapsed = time.monotonic() - started
    stored = backups_dir(project) / backup_id
    manifest = json.loads((stored / "manifest.json").read_text())
    print(f"\nbackup of the reference app: {manifest['duration_s']}s on the host, {elapsed:.1f}s for `inv backup "
          f"--download`; {sum(f['size'] for f in manifest['files'])} bytes in {len(manifest['files'])} files, "
          f"database {next(f['size'] for f in manifest['files'] if f['path'] == 'database.sqlite3')} bytes")
    assert manifest["revision"] == project.head() and manifest["image"] == f"{project.name}:{project.head()[:12]}"
    assert manifest["env"] == "test" and manifest["tool"].startswith("droplet-deploy ")
    paths = {f["path"] for f in manifest["files"]}
    assert {"database.sqlite3", "config/docker-compose.test.yml", "config/.env"} <= paths
    assert {f"logs/{project.name}-test-app-1.log", f"logs/{project.name}-test-proxy-1.log"} <= paths
    assert (stored / "SHA256SUMS").exists()
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(stored / "config" / ".env").st_mode) == 0o600
    assert (stored / "config" / ".env").read_text() == f"APP_SECRET_KEY={SECRET}\n"
    downloaded = tmp_path / "downloads" / backup_id
    assert stat.S_IMODE(os.stat(downloaded / "config" / ".env").st_mode) == 0o600
    assert "PASS  database" in project.inv("backup.verify", str(downloaded)).stdout
    assert "intact" in project.inv("backup.verify", backup_id).stdout

    # Lose everything: the volume goes, a redeploy starts on an empty database.
    compose = ["docker", "compose", "--project-name", project.compose_project(), "--file",
               "docker-compose.test.yml"]
    subprocess.run([*compose, "down", "--volumes"], cwd=project.path, check=True, capture_output=True)
    project.inv("deploy.test")
    assert quotes(project) == []

    refused = project.inv("backup.restore", backup_id, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: backup.restore replaces the live database and there is no terminal to confirm on "
        "(pass --yes to restore without asking)"]

    restored = project.inv("backup.restore", backup_id, "--yes")
    assert f"restored {backup_id}" in restored.stdout
    assert quotes(project) == ["first", "second", "third"]
    add_quotes(project, "after the restore")  # the live database takes writes again
    assert quotes(project)[-1] == "after the restore"

    listed = project.inv("backup.list").stdout
    assert backup_id in listed and f"(before restore of {backup_id})" in listed, listed
    history = [json.loads(line) for line in (project.path / ".deploy/test/history.jsonl").read_text().splitlines()]
    assert (history[-1]["action"], history[-1]["backup"], history[-1]["result"]) == ("restore", backup_id, "ok")

    printed = "".join(r.stdout + r.stderr for r in (restored, refused)) + listed
    assert SECRET not in printed


def test_corrupted_backup_fails_verify_naming_the_file_and_is_never_restored(project):
    project.inv("deploy.test")
    add_quotes(project, "precious")
    backup_id = take_backup(project)
    flip_byte(backups_dir(project) / backup_id / "database.sqlite3", 0)  # the SQLite header: unopenable too

    result = project.inv("backup.verify", backup_id, check=False)
    assert result.returncode == 1
    assert "FAIL  checksums" in result.stdout and "FAIL  database" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: backup {backup_id} is damaged: database.sqlite3: checksum mismatch")
    assert "database.sqlite3: integrity check failed" in line

    add_quotes(project, "newer")
    refused = project.inv("backup.restore", backup_id, "--yes", check=False)
    assert refused.returncode == 1 and "is damaged" in refused.stderr and "Traceback" not in refused.stderr
    assert quotes(project) == ["precious", "newer"]


def test_backup_under_writes_is_a_consistent_snapshot_and_a_dry_run_writes_nothing(project):
    project.inv("deploy.test")
    stop = threading.Event()
    written: list[int] = []

    def writer():
        while not stop.is_set():
            answer = requests.post(project.url + "/api/quotes", json={"text": f"q{len(written)}"}, timeout=10)
            if answer.status_code == 201:
                written.append(answer.json()["id"])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(written) > 20, timeout=30)
        backup_id = take_backup(project)
    finally:
        stop.set()
        thread.join()
    con = sqlite3.connect(f"file:{backups_dir(project) / backup_id / 'database.sqlite3'}?mode=ro", uri=True)
    ids = [row[0] for row in con.execute("SELECT id FROM quotes ORDER BY id")]
    con.close()
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 20, "a gap-free prefix of what was written"
    assert "intact" in project.inv("backup.verify", backup_id).stdout

    planned = project.inv("--dry", "backup")
    assert "planned a backup" in planned.stdout and "[dry-run] [local] sh -c" in planned.stderr
    assert backup_ids(project) == [backup_id]


def test_a_changed_log_file_is_named_too(project):
    project.inv("deploy.test")
    backup_id = take_backup(project)
    log = next((backups_dir(project) / backup_id / "logs").iterdir())
    log.write_text(log.read_text() + "tampered\n")
    result = project.inv("backup.verify", backup_id, check=False)
    assert result.returncode == 1
    assert f"logs/{log.name}: checksum mismatch" in result.stderr
    assert "PASS  database" in result.stdout


def test_retention_keeps_exactly_n(project):
    project.configure(keep_backups=2)
    project.inv("deploy.test")
    made = [take_backup(project) for _ in range(4)]
    assert backup_ids(project) == made[-2:], "each backup applies keep_backups"
    (backups_dir(project) / "20000101T000000Z-unfinished").mkdir()  # no manifest: never pruned, listed
    assert "unfinished" in project.inv("backup.list").stdout
    pruned = project.inv("backup.prune", "--keep", "1")
    assert made[-2] in pruned.stdout
    assert backup_ids(project) == ["20000101T000000Z-unfinished", made[-1]]
    bad = project.inv("backup.prune", "--keep", "0", check=False)
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_no_app_running_means_nothing_to_back_up(project):
    result = project.inv("backup", check=False)
    assert result.returncode == 1
    assert "nothing to back up" in result.stderr and "Traceback" not in result.stderr
    assert backup_ids(project) == []


def test_pipeline_backs_up_before_a_deploy_and_a_failed_backup_changes_nothing(project):
    project.configure(environments={"test": {"backup_before_deploy": True}})
    first = project.inv("deploy.test")
    assert "nothing to back up" in first.stdout  # first deploy: no app container yet
    add_quotes(project, "before the second release")

    routes = project.path / "app" / "routes.py"
    routes.write_text(routes.read_text() + "\n# second release\n")
    second_rev = project.commit("second release")
    project.inv("deploy.test")
    (backup_id,) = backup_ids(project)
    manifest = json.loads((backups_dir(project) / backup_id / "manifest.json").read_text())
    assert manifest["note"] == f"before deploy of {second_rev}"
    assert manifest["revision"] != second_rev, "the backup holds the release that was running"

    serving = project.containers()
    project.configure(environments={"test": {"backup_command": ["sh", "-c", "echo disk full >&2; exit 1"]}})
    routes.write_text(routes.read_text() + "\n# third release\n")
    third_rev = project.commit("third release")
    failed = project.inv("deploy.test", check=False)
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: backup before deploy failed:") and "disk full" in line
    assert "==> build" not in failed.stdout
    assert project.containers() == serving
    assert project.health()["revision"] == second_rev
    assert quotes(project) == ["before the second release"]
    assert backup_ids(project) == [backup_id], "the failed backup left nothing behind"
    images = subprocess.run(["docker", "image", "ls", project.name, "--format", "{{.Tag}}"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert third_rev[:12] not in images
    last = json.loads((project.path / ".deploy/test/history.jsonl").read_text().splitlines()[-1])
    assert (last["revision"], last["result"]) == (third_rev, "failed") and "disk full" in last["reason"]


# --- over SSH: the test sshd in front of this machine's engine ------------------------------------------------


@pytest.fixture
def prod(project, tmp_path):
    from tests.support.sshd import ensure_sshd_available, running_sshd

    reason = ensure_sshd_available()  # raises in CI: there the SSH tests must run, never skip
    if reason:
        pytest.skip(reason)
    srv = tmp_path / "srv"
    (srv / "shared").mkdir(parents=True)
    (srv / "shared" / ".env").write_text(f"APP_SECRET_KEY={SECRET}\n")
    (srv / "shared" / ".env").chmod(0o600)
    with running_sshd(tmp_path / "sshd") as sshd:
        project.configure(environments={"prod": {
            "project": f"{project.name}-prod", "public_port": project.port, "host": "prod",
            "remote_dir": str(srv), "env_file": ".env", "ssh_config": str(sshd.ssh_config),
            "known_hosts": str(sshd.known_hosts), "drain_seconds": 2, "keep_backups": 3,
        }})
        yield project, srv


def test_round_trip_over_ssh_and_a_failed_backup_stops_the_production_deploy(prod, tmp_path):
    project, srv = prod
    first = project.inv("deploy.prod", "--host", "prod")
    assert "nothing to back up" in first.stdout
    add_quotes(project, "remote one", "remote two")

    started = time.monotonic()
    backup_id = take_backup_remote(project, srv, "--download", str(tmp_path / "downloads"))
    elapsed = time.monotonic() - started
    stored = srv / "backups" / "prod" / backup_id
    manifest = json.loads((stored / "manifest.json").read_text())
    print(f"\nbackup over SSH: {manifest['duration_s']}s on the host, {elapsed:.1f}s for `inv backup --host prod "
          f"--download`; {sum(f['size'] for f in manifest['files'])} bytes in {len(manifest['files'])} files")
    assert manifest["revision"] == project.head() and manifest["env"] == "prod"
    assert "config/docker-compose.beta.yml" in {f["path"] for f in manifest["files"]}
    assert (stored / "config" / ".env").read_text() == f"APP_SECRET_KEY={SECRET}\n"
    assert stat.S_IMODE(os.stat(stored / "config" / ".env").st_mode) == 0o600
    assert (tmp_path / "downloads" / backup_id / "database.sqlite3").read_bytes() == \
        (stored / "database.sqlite3").read_bytes()
    verified = project.inv("backup.verify", backup_id, "--host", "prod")
    assert "PASS  database" in verified.stdout and "intact" in verified.stdout

    subprocess.run(["docker", "compose", "--project-name", f"{project.name}-prod", "down", "--volumes"],
                   check=True, capture_output=True)
    project.inv("deploy.prod", "--host", "prod")
    assert quotes(project) == []
    restored = project.inv("backup.restore", backup_id, "--yes", "--host", "prod")
    assert f"restored {backup_id}" in restored.stdout
    assert quotes(project) == ["remote one", "remote two"]

    # A production deploy backs up first; when that fails, nothing changes.
    serving = project.containers("prod")
    project.configure(environments={"prod": {"backup_command": ["false"]}})
    routes = project.path / "app" / "routes.py"
    routes.write_text(routes.read_text() + "\n# next release\n")
    next_rev = project.commit("next release")
    failed = project.inv("deploy.prod", "--host", "prod", check=False)
    assert failed.returncode == 1 and "backup before deploy failed" in failed.stderr
    assert "--skip-backup" in failed.stderr
    assert project.containers("prod") == serving and project.health()["revision"] != next_rev
    history = [json.loads(line) for line in (srv / "state" / "history.jsonl").read_text().splitlines()]
    assert (history[-1]["revision"], history[-1]["result"]) == (next_rev, "failed")

    skipped = project.inv("deploy.prod", "--host", "prod", "--skip-backup")
    assert "backup skipped" in skipped.stdout and project.health()["revision"] == next_rev
    history = [json.loads(line) for line in (srv / "state" / "history.jsonl").read_text().splitlines()]
    assert (history[-1]["result"], history[-1]["skipped_backup"]) == ("ok", True)
    assert quotes(project) == ["remote one", "remote two"]
    everything = "".join(r.stdout + r.stderr for r in (first, verified, restored, failed, skipped))
    assert SECRET not in everything


def take_backup_remote(project, srv, *args: str) -> str:
    result = project.inv("backup", "--host", "prod", *args)
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    backup_id = line.split()[1].rstrip(":")
    assert (srv / "backups" / "prod" / backup_id / "manifest.json").exists(), line
    assert SECRET not in result.stdout + result.stderr
    return backup_id
