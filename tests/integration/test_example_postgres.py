"""The reference stack with a db service (examples/postgres/), deployed as its README says, on the real engine:
a release whose pre_switch hook migrates the database from a one-off container of the new image, through the
app's own DATABASE_URL on the stack's network, before traffic moves; then the db service is backed up."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import wait_for
from tests.support.postgres import IMAGE as POSTGRES_IMAGE
from tests.support.postgres import ensure_postgres_available
from tests.support.thirdparty import wheels_for

pytestmark = pytest.mark.integration

PASSWORD = "example-db-password-never-printed"


def psql(project, sql: str) -> str:
    (db,) = project.containers(service="db")
    return subprocess.run(["docker", "exec", "-i", db, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                           "-U", "shop", "-d", "shop"], input=sql, text=True, capture_output=True,
                          check=True).stdout.strip()


def test_a_pre_switch_migration_reaches_the_db_service_as_the_app_does(project):
    reason = ensure_postgres_available()  # raises in CI
    if reason:
        pytest.skip(reason)
    wheels, _ = wheels_for("pg8000\n")  # pure Python, from PyPI once, then cached
    into = project.path / "examples" / "postgres" / "wheels"
    into.mkdir()
    for wheel in wheels.glob("*.whl"):
        shutil.copy2(wheel, into)
    project.write(".env", f"APP_SECRET_KEY=example-secret-of-32-characters-xx\nPOSTGRES_PASSWORD={PASSWORD}\n")  # git ignores it
    project.commit("the example's wheels")
    project.configure(dockerfile="examples/postgres/Dockerfile", backup_service="db", db_kind="postgres",
                      environments={"test": {"compose_file": "examples/postgres/docker-compose.yml",
                                             "env_file": ".env"}})
    compose = project.path / "examples" / "postgres" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("${POSTGRES_IMAGE:-postgres:15}", POSTGRES_IMAGE))
    first_rev = project.commit("the local PostgreSQL image")
    project.inv("deploy.test")
    assert project.health()["revision"] == first_rev
    (db,) = project.containers(service="db")
    wait_for(lambda: subprocess.run(["docker", "exec", db, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "shop"],
                                    capture_output=True).returncode == 0, timeout=120)
    assert psql(project, "select count(*) from pg_tables where schemaname = 'public'") == "0"

    project.configure(hooks={"pre_switch": [["python3", "-m", "migrations"]]})
    (project.path / "app" / "routes.py").write_text((project.path / "app" / "routes.py").read_text() + "\n#\n")
    second_rev = project.commit("a release with migrations")
    deployed = project.inv("deploy.test")
    assert "applied 0001_quotes" in deployed.stdout and "applied 0002_quotes_created" in deployed.stdout
    assert deployed.stdout.index("applied 0002_quotes_created") < deployed.stdout.index("==> rollout")
    assert project.health()["revision"] == second_rev
    assert psql(project, "select name from schema_steps order by name").splitlines() == [
        "0001_quotes", "0002_quotes_created"]
    psql(project, "insert into quotes (text, author) values ('from the example', 'test')")

    again = project.inv("deploy.test")  # migrations run once: the next release finds nothing to apply
    assert "applied" not in again.stdout and "database at step 0002_quotes_created" in again.stdout

    backed = project.inv("backup")
    (stored,) = (project.path / "backups" / "test").iterdir()
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["rows"] == {"public.quotes": 1, "public.schema_steps": 2}
    assert PASSWORD not in deployed.stdout + deployed.stderr + again.stdout + backed.stdout
