"""After a first deploy (no backup yet), an absent SQLite file at db_path is named with the setting to write,
before the second deploy's backup would stop on it (droplet_deploy/pipeline/db_path_check.py). The session is a
stand-in: only the backend's one-off command and the notes are used."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from droplet_deploy.core import config
from droplet_deploy.pipeline.db_path_check import after_first_deploy
from droplet_deploy.transport.target import Result


def session_for(root, exit_status: int, **deploy):
    settings = config.load({"app_name": "shop", "environments": {"prod": {"project": "shop-prod", "host": "prod",
                                                                          **deploy}}}, "prod", root=root)
    ran, notes = [], []

    def one_off(image, command):
        ran.append((image, command))
        return Result(command, exit_status, "", "")

    backend = SimpleNamespace(backs_up_by_default=True, one_off=one_off)
    session = SimpleNamespace(settings=settings, target=SimpleNamespace(dry=False), backend=backend,
                              ui=SimpleNamespace(note=notes.append))
    return session, ran, notes


def test_an_absent_database_file_is_named_with_the_setting_after_the_first_deploy(root):
    session, ran, notes = session_for(root, 1)
    after_first_deploy(session, "shop:abc", "")
    assert ran == [("shop:abc", ["test", "-f", "/data/app.db"])]
    assert len(notes) == 1 and "no SQLite file at db_path /data/app.db" in notes[0]
    assert "set deploy.environments.prod.db_path" in notes[0] and "db_path: null" in notes[0]


@pytest.mark.parametrize(("status", "backup", "deploy"), [
    (0, "", {}),  # the file is there
    (1, "20250101T000000Z", {}),  # a backup was taken: it found the file
    (1, "", {"db_path": None}),  # no database
    (1, "", {"backup_before_deploy": False}),  # no backups, so nothing would stop
    (127, "", {}),  # no `test` in the image: nothing known
])
def test_nothing_is_said_when_nothing_would_stop(root, status, backup, deploy):
    session, ran, notes = session_for(root, status, **deploy)
    after_first_deploy(session, "shop:abc", backup)
    assert notes == []
