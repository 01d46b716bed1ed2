"""The first production deploy of an app whose SQLite file is not where db_path says: it says so, with the
setting, before the second deploy's backup would stop on it. Real engine, real compose, over a real sshd."""

from __future__ import annotations

import pytest

from tests.integration.test_remote import configure_prod

pytestmark = pytest.mark.integration


def test_the_first_deploy_names_an_absent_sqlite_file_and_the_setting_to_write(project, sshd, tmp_path):
    prod = configure_prod(project, sshd, tmp_path)
    prod.use(db_path="/data/not-the-apps.db", backup_before_deploy=True)
    first = prod.deploy()
    output = first.stdout + first.stderr
    assert "no app container running yet (first deploy): nothing to back up" in output
    assert "warning: no SQLite file at db_path /data/not-the-apps.db in the release" in output
    assert "set deploy.environments.prod.db_path" in output

    # Where it names the app's own file, the first deploy says nothing, and the second one's backup works.
    prod.use(db_path="/data/app.db")
    second = prod.deploy()
    assert "no SQLite file at db_path" not in second.stdout + second.stderr
