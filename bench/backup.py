#!/usr/bin/env python3
"""What PostgreSQL backups cost: backup and verify time for a database of at least --mb MB, and the time the
pre-deploy backup adds to a deploy, all in one run.

Usage, from the repository root, with the Docker engine running and the local images built (scripts/bootstrap):

    .venv/bin/python bench/backup.py             # a 120 MB database, 3 runs of each, medians
    .venv/bin/python bench/backup.py --mb 200 --runs 5

One throwaway project (its own compose project, image name and public port): the reference app beside a `db`
service of local/postgres:15 (tests/support/postgres.py), `backup_service: db`, `db_kind: postgres`. The database
is filled with generated rows until `pg_database_size` reaches --mb. Then, each run:
  backup            `inv backup`: pg_dump streamed into the backup directory, plus its restore test into a
                    scratch server (the automatic check each backup gets)
  verify            `inv backup.verify ID`: checksums and the restore test alone
  floor             `pg_dump --format=custom` in the db container to a file on this machine, by hand: the dump
                    no tool can avoid; backup / floor is the toolkit's overhead
  deploy, backup    `inv deploy.test` of a one-line change with backup_before_deploy: true
  deploy, none      the same with backup_before_deploy: false; the difference is the pre-deploy backup's cost
Deploys alternate between the two settings, so drift on a shared machine hits them alike. Everything created is
removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.conftest import make_project, remove_project_resources  # noqa: E402
from tests.support.postgres import IMAGE as POSTGRES_IMAGE  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def psql(db: str, sql: str) -> str:
    return subprocess.run(["docker", "exec", "-i", db, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",  # noqa: S603
                           "-U", "shop", "-d", "shopdb"], input=sql, text=True, capture_output=True,
                          check=True).stdout.strip()


def fill(db: str, megabytes: int) -> int:
    """Rows of about 800 bytes of random text in two tables until the database holds ``megabytes``; its size."""
    psql(db, "create table events (id bigserial primary key, at timestamptz default now(), body text);"
             "create table notes (id serial primary key, body text);")
    while True:
        size = int(psql(db, "select pg_database_size(current_database())"))
        if size >= megabytes * 1024 * 1024:
            return size
        # Random text in every row (evaluated per row), so the dump does not compress away what it holds.
        psql(db, "insert into events (body) select (select string_agg(md5(random()::text || k), '') "
                 "from generate_series(1, 24) as k where n > 0) from generate_series(1, 20000) as n;"
                 "insert into notes (body) select md5(random()::text) from generate_series(1, 2000);")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=120, help="database size to reach, in MB (default 120)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        project = make_project(Path(tmp))
        try:
            return run(project, args.mb, args.runs, Path(tmp))
        finally:
            remove_project_resources(project.name)


def run(project, megabytes: int, runs: int, tmp: Path) -> int:
    compose_file = project.path / "docker-compose.test.yml"
    stack = yaml.safe_load(compose_file.read_text())
    stack["services"]["db"] = {"image": POSTGRES_IMAGE, "volumes": ["db-data:/var/lib/postgresql/data"],
                               "environment": {"POSTGRES_USER": "shop", "POSTGRES_DB": "shopdb",
                                               "POSTGRES_PASSWORD": "bench"}}
    stack["volumes"]["db-data"] = None
    compose_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    project.commit("a db service")
    project.configure(backup_service="db", db_kind="postgres", keep_backups=2)
    project.inv("deploy.test")
    (db,) = project.containers(service="db")
    for _ in range(120):
        if subprocess.run(["docker", "exec", db, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "shop"],  # noqa: S603
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.5)
    say(f"filling the database to {megabytes} MB ...")
    size = fill(db, megabytes)
    say(f"database: {size / 1024 / 1024:.0f} MB (pg_database_size)")

    backup, verify, floor, dump_size = [], [], [], 0
    for index in range(runs):
        started = time.monotonic()
        out = project.inv("backup").stdout
        backup.append(time.monotonic() - started)
        (summary,) = [line for line in out.splitlines() if line.startswith("backup ")]
        backup_id = summary.split()[1].rstrip(":")
        dump_size = (project.path / "backups" / "test" / backup_id / "database.pgdump").stat().st_size
        started = time.monotonic()
        project.inv("backup.verify", backup_id)
        verify.append(time.monotonic() - started)
        with open(tmp / f"floor-{index}.pgdump", "wb") as sink:
            floor.append(_floor(db, sink))
        (tmp / f"floor-{index}.pgdump").unlink()

    with_backup, without = [], []
    routes = project.path / "app" / "routes.py"
    for index in range(runs):
        for setting, into in ((True, with_backup), (False, without)):
            project.configure(environments={"test": {"backup_before_deploy": setting}})
            routes.write_text(routes.read_text() + f"\n# bench {index} {setting}\n")
            project.commit(f"bench {index} {setting}")
            started = time.monotonic()
            project.inv("deploy.test")
            into.append(time.monotonic() - started)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    say("")
    say(f"PostgreSQL backups, {size / 1024 / 1024:.0f} MB database, dump {dump_size / 1024 / 1024:.1f} MB, "
        f"median of {runs}")
    say(f"  {'':<34} {'seconds':>8}  {'vs floor':>8}")
    say(f"  {'floor: pg_dump to a file by hand':<34} {med(floor):>8.1f}  {1.0:>7.2f}x")
    say(f"  {'inv backup (dump + restore test)':<34} {med(backup):>8.1f}  {med(backup) / med(floor):>7.2f}x")
    say(f"  {'inv backup.verify (restore test)':<34} {med(verify):>8.1f}  {med(verify) / med(floor):>7.2f}x")
    say(f"  {'deploy.test, no backup':<34} {med(without):>8.1f}")
    say(f"  {'deploy.test, backup before':<34} {med(with_backup):>8.1f}")
    say(f"  pre-deploy backup adds {med(with_backup) - med(without):.1f}s "
        f"({(med(with_backup) / med(without) - 1) * 100:.0f}% of the deploy without it)")
    return 0


def _floor(db: str, sink) -> float:
    started = time.monotonic()
    subprocess.run(["docker", "exec", db, "pg_dump", "--format=custom", "-U", "shop", "-d", "shopdb"],  # noqa: S603
                   stdout=sink, check=True)
    return time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
