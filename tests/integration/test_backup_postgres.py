"""Backups of a stack with a real PostgreSQL 15 service (tests/support/postgres.py's image), on the real engine.

The stack is the one users run: the reference app (its image has no PostgreSQL client) beside a `db` service with
its own volume; `backup_service: db` and `db_kind: postgres` put the dump where the database is. Rows go in and
come out through psql in the db container; the backup, its check and the restore go through `inv` as users run it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

from tests.support.postgres import IMAGE as POSTGRES_IMAGE
from tests.support.postgres import ensure_postgres_available

pytestmark = pytest.mark.integration

PASSWORD = "pg-password-that-must-never-be-printed"
SCHEMA = ("create table quotes (id serial primary key, text text not null);"
          "create table authors (name text primary key);")


def add_db_service(project, compose: str, *, env_file: bool = False) -> None:
    """The usual production shape: a `db` service of the PostgreSQL image with its own volume; its password in
    the compose file, or (``env_file``) in the host's .env as users keep it."""
    reason = ensure_postgres_available()  # raises in CI
    if reason:
        pytest.skip(reason)
    compose_file = project.path / compose
    stack = yaml.safe_load(compose_file.read_text())
    stack["services"]["db"] = {
        "image": POSTGRES_IMAGE,
        "environment": {"POSTGRES_USER": "shop", "POSTGRES_DB": "shopdb",
                        **({} if env_file else {"POSTGRES_PASSWORD": PASSWORD})},
        **({"env_file": ["${APP_ENV_FILE:-.env}"]} if env_file else {}),
        "volumes": ["db-data:/var/lib/postgresql/data"],
    }
    stack["volumes"]["db-data"] = None
    compose_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    project.commit("a db service")
    project.configure(backup_service="db", db_kind="postgres")


def fill(project, env: str = "test") -> None:
    wait_for_db(project, env)
    psql(project, SCHEMA + "insert into quotes (text) values ('one'), ('two'), ('three');"
                  "insert into authors values ('ann');", env)


@pytest.fixture
def pg_project(project):
    add_db_service(project, "docker-compose.test.yml")
    project.inv("deploy.test")
    fill(project)
    return project


def db_container(project, env: str = "test") -> str:
    (container,) = project.containers(env, service="db")
    return container


def wait_for_db(project, env: str = "test", timeout: float = 120.0) -> None:
    from tests.conftest import wait_for

    wait_for(lambda: subprocess.run(["docker", "exec", db_container(project, env), "pg_isready", "-q", "-h",
                                     "127.0.0.1", "-U", "shop"], capture_output=True).returncode == 0, timeout=timeout)


def psql(project, sql: str, env: str = "test") -> str:
    result = subprocess.run(["docker", "exec", "-i", db_container(project, env), "psql", "-X", "-q", "-A", "-t",
                             "-v", "ON_ERROR_STOP=1", "-U", "shop", "-d", "shopdb"], input=sql, text=True,
                            capture_output=True, check=True)
    return result.stdout.strip()


def quotes(project, env: str = "test") -> list[str]:
    return psql(project, "select text from quotes order by id", env).splitlines()


def backups_dir(project):
    return project.path / "backups" / "test"


def take_backup(project) -> str:
    before = {p.name for p in backups_dir(project).iterdir()} if backups_dir(project).exists() else set()
    result = project.inv("backup")
    (new,) = {p.name for p in backups_dir(project).iterdir()} - before
    assert f"backup {new}: " in result.stdout, result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    return new


def scratch_left(project) -> list[str]:
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()
    volumes = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    prefix = f"{project.compose_project()}-verify-"
    return [n for n in names + volumes if n.startswith(prefix)]


def test_dump_in_the_db_service_verified_by_a_restore_and_restored_over_changed_rows(pg_project):
    project = pg_project
    app = project.containers()[0]
    no_client = subprocess.run(["docker", "exec", app, "sh", "-c", "command -v pg_dump || command -v psql"],
                               capture_output=True)
    assert no_client.returncode != 0  # the app image has no PostgreSQL client: the dump runs in the db service

    backup_id = take_backup(project)
    stored = backups_dir(project) / backup_id
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["database"]["kind"] == "postgres" and manifest["database"]["service"] == "db"
    assert (manifest["database"]["user"], manifest["database"]["db"]) == ("shop", "shopdb")
    assert manifest["rows"] == {"public.authors": 1, "public.quotes": 3}
    dump = stored / "database.pgdump"
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    assert json.loads((stored / "verified.json").read_text())["ok"] is True  # checked by a restore when made
    # The service's password is in its environment (and so in the copy of the compose file that holds it), never
    # in what the toolkit wrote: the manifest, the verdict, the logs.
    assert PASSWORD.encode() not in b"".join(p.read_bytes() for p in stored.rglob("*") if p.is_file()
                                              and "config" not in p.relative_to(stored).parts)
    # Nothing was left on the db container's disk, nor any scratch container or volume.
    tmp = subprocess.run(["docker", "exec", db_container(project), "ls", "-A", "/tmp"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert tmp == [] and scratch_left(project) == []

    verified = project.inv("backup.verify", backup_id)
    assert "PASS  database" in verified.stdout and "2 tables, 4 rows" in verified.stdout, verified.stdout
    assert scratch_left(project) == []

    psql(project, "update quotes set text = 'changed' where text = 'two'; delete from authors;"
                  "insert into quotes (text) values ('four');")
    restored = project.inv("backup.restore", backup_id, "--yes")
    assert f"restored {backup_id}" in restored.stdout, restored.stdout
    # The app stopped for the restore (no write lands in the middle) and came back proven at its revision.
    out = restored.stdout
    assert out.index("==> stop writers app") < out.index("==> restore") < out.index("==> start writers app")
    assert "serving again" in out and "dump with pg_restore into" in out
    assert quotes(project) == ["one", "two", "three"]
    assert psql(project, "select name from authors") == "ann"
    # The state before the restore is a backup of its own, holding the changed rows.
    (safety,) = [m for m in (json.loads(p.read_text()) for p in backups_dir(project).glob("*/manifest.json"))
                 if m["note"] == f"before restore of {backup_id}"]
    assert safety["rows"] == {"public.authors": 0, "public.quotes": 4}
    assert project.health()["revision"] == project.head()
    assert PASSWORD not in restored.stdout + restored.stderr + verified.stdout


def test_a_cut_dump_with_a_fixed_checksum_fails_and_an_empty_database_is_refused(pg_project):
    project = pg_project
    psql(project, "insert into quotes (text) select 'row ' || n from generate_series(1, 5000) as n;")
    backup_id = take_backup(project)
    stored = backups_dir(project) / backup_id
    dump = stored / "database.pgdump"
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) * 2 // 3])
    # Fix up the checksum and size, as a careless copy tool or an attacker would: only the restore can tell.
    import hashlib

    manifest = json.loads((stored / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "database.pgdump":
            entry["sha256"], entry["size"] = hashlib.sha256(dump.read_bytes()).hexdigest(), dump.stat().st_size
    (stored / "manifest.json").write_text(json.dumps(manifest))
    failed = project.inv("backup.verify", backup_id, check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL  checksums" not in failed.stdout and "FAIL  database" in failed.stdout, failed.stdout
    assert json.loads((stored / "verified.json").read_text())["ok"] is False
    assert scratch_left(project) == []
    refused = project.inv("backup.restore", backup_id, "--yes", check=False)
    assert refused.returncode == 1 and len(quotes(project)) == 5003

    psql(project, "drop table quotes; drop table authors;")
    before = sorted(p.name for p in backups_dir(project).iterdir())
    empty = project.inv("backup", check=False)
    assert empty.returncode == 1 and "an empty dump is not kept" in empty.stderr, empty.stderr
    assert len(empty.stderr.strip().splitlines()) <= 2 and "Traceback" not in empty.stderr
    assert sorted(p.name for p in backups_dir(project).iterdir()) == before


def test_retention_keeps_the_newest_verified_backup_when_all_newer_failed(pg_project):
    project = pg_project
    good = take_backup(project)
    newer = [take_backup(project) for _ in range(2)]
    for backup_id in newer:
        verdict = backups_dir(project) / backup_id / "verified.json"
        verdict.write_text(json.dumps({"ok": False, "detail": "a failed restore test", "at": "now"}))
    pinned = backups_dir(project) / f"{good}.keep"
    subprocess.run(["cp", "-a", str(backups_dir(project) / good), str(pinned)], check=True)
    pruned = project.inv("backup.prune", "--keep", "1")
    left = sorted(p.name for p in backups_dir(project).iterdir())
    assert left == sorted([good, newer[-1], pinned.name]), (left, pruned.stdout)


def test_rollback_with_data_restores_the_backup_taken_before_the_release_undone(pg_project):
    project = pg_project
    first = project.head()
    project.configure(environments={"test": {"backup_before_deploy": True, "keep_backups": 1}})
    # Folders the toolkit did not name, beside its own: an operator's pinned copy and another tool's dumps.
    theirs = [backups_dir(project) / "20250101T000000Z-abc.keep", backups_dir(project) / "nightly-pg_dumpall"]
    for folder in theirs:
        folder.mkdir(parents=True)
        (folder / "data").write_text("not the toolkit's")
    routes = project.path / "app" / "routes.py"
    routes.write_text(routes.read_text() + "\n# the release to undo\n")
    second = project.commit("the release to undo")
    deployed = project.inv("deploy.test")
    assert "backup " in deployed.stdout and project.health()["revision"] == second
    psql(project, "insert into quotes (text) values ('written by the bad release'); delete from authors;")

    rolled = project.inv("deploy.rollback", "--with-data")
    assert project.health()["revision"] == first, rolled.stdout
    assert quotes(project) == ["one", "two", "three"] and psql(project, "select name from authors") == "ann"
    assert "==> stop writers app" in rolled.stdout and "serving again" in rolled.stdout, rolled.stdout
    project.inv("backup")  # and a backup more, with keep_backups: 1
    assert all((folder / "data").read_text() == "not the toolkit's" for folder in theirs)
    assert scratch_left(project) == []
    assert PASSWORD not in rolled.stdout + rolled.stderr + deployed.stdout


def test_a_production_deploy_over_ssh_backs_up_the_db_service_first(project, tmp_path):
    from tests.support.sshd import ensure_sshd_available, running_sshd

    reason = ensure_sshd_available()  # raises in CI
    if reason:
        pytest.skip(reason)
    add_db_service(project, "docker-compose.beta.yml", env_file=True)
    srv = tmp_path / "srv"
    (srv / "shared").mkdir(parents=True)
    (srv / "shared" / ".env").write_text(f"APP_SECRET_KEY=another-secret-value\nPOSTGRES_PASSWORD={PASSWORD}\n")
    (srv / "shared" / ".env").chmod(0o600)
    with running_sshd(tmp_path / "sshd") as sshd:
        project.configure(environments={"prod": {
            "project": f"{project.name}-prod", "public_port": project.port, "host": "prod",
            "remote_dir": str(srv), "env_file": ".env", "ssh_config": str(sshd.ssh_config),
            "known_hosts": str(sshd.known_hosts), "drain_seconds": 2,
        }})
        first = project.inv("deploy.prod", "--host", "prod")
        fill(project, "prod")
        routes = project.path / "app" / "routes.py"
        routes.write_text(routes.read_text() + "\n# next release\n")
        next_rev = project.commit("next release")
        second = project.inv("deploy.prod", "--host", "prod")
        assert project.health()["revision"] == next_rev
        (stored,) = (srv / "backups" / "prod").iterdir()
        manifest = json.loads((stored / "manifest.json").read_text())
        assert manifest["note"] == f"before deploy of {next_rev}" and manifest["database"]["kind"] == "postgres"
        assert manifest["rows"] == {"public.authors": 1, "public.quotes": 3}
        assert json.loads((stored / "verified.json").read_text())["ok"] is True
        # The password lives in the host's .env only: never in the dump, manifest, logs or output.
        assert PASSWORD.encode() not in b"".join(p.read_bytes() for p in stored.rglob("*")
                                                  if p.is_file() and p.name != ".env")
        assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr

        psql(project, "delete from quotes;", "prod")
        restored = project.inv("backup.restore", stored.name, "--yes", "--host", "prod")
        assert quotes(project, "prod") == ["one", "two", "three"], restored.stdout
        assert project.health()["revision"] == next_rev


def test_copies_to_a_second_ssh_host_and_an_s3_bucket_and_a_restore_from_each(pg_project, tmp_path):
    from tests.support.s3 import ensure_s3_available, running_s3
    from tests.support.sshd import ensure_sshd_available, running_sshd

    for reason in (ensure_sshd_available(), ensure_s3_available()):  # each raises in CI
        if reason:
            pytest.skip(reason)
    project = pg_project
    vault_dir = tmp_path / "vault"
    with running_sshd(tmp_path / "sshd-vault", alias="vault") as vault, running_s3(tmp_path / "s3") as s3:
        s3.client().create_bucket(Bucket="offsite")
        ssh_place, s3_place = f"ssh://vault{vault_dir}", "s3://offsite/shop"
        project.configure(environments={"test": {
            "backup_copy": [ssh_place, s3_place],
            "ssh_config": str(vault.ssh_config), "known_hosts": str(vault.known_hosts)}})
        aws = s3.env()
        made = project.inv("backup", **aws)
        (summary,) = [line for line in made.stdout.splitlines() if line.startswith("backup ")]
        backup_id = summary.split()[1].rstrip(":")
        assert f"copied to {ssh_place}, {s3_place}" in summary, made.stdout
        copied = vault_dir / "test" / backup_id
        assert (copied / "database.pgdump").read_bytes() == \
            (backups_dir(project) / backup_id / "database.pgdump").read_bytes()
        assert stat.S_IMODE(os.stat(copied / "database.pgdump").st_mode) == 0o600
        keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket="offsite")["Contents"]}
        assert {f"shop/test/{backup_id}/database.pgdump", f"shop/test/{backup_id}/manifest.json"} <= keys
        listed = project.inv("backup.list", **aws).stdout
        assert f"copies at {ssh_place}: {backup_id}" in listed and f"copies at {s3_place}: {backup_id}" in listed

        for place in (s3_place, ssh_place):
            # The droplet lost its backups: only the copy is left.
            subprocess.run(["rm", "-rf", str(backups_dir(project) / backup_id)], check=True)
            psql(project, "delete from quotes; delete from authors;")
            restored = project.inv("backup.restore", backup_id, "--yes", "--from", place, **aws)
            assert f"restored {backup_id}" in restored.stdout, restored.stdout
            assert quotes(project) == ["one", "two", "three"] and psql(project, "select name from authors") == "ann"
            assert (backups_dir(project) / backup_id / "manifest.json").exists()
        assert scratch_left(project) == []
        assert aws["AWS_SECRET_ACCESS_KEY"] not in made.stdout + made.stderr + restored.stdout
