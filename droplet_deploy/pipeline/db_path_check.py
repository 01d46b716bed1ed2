"""After a deploy that took no backup because nothing ran yet (a first deploy): is the SQLite file ``db_path``
names there in the release? If not, the next deploy's backup would stop at ``no SQLite database at db_path``;
this one says which setting to write, while nothing is at stake.

A one-off container of the new image (the app's volumes mounted, as it runs) looks for the file; an image
without ``test`` says nothing either way.
"""

from __future__ import annotations

from droplet_deploy.backup.create import has_database
from droplet_deploy.pipeline.backup_step import wanted
from droplet_deploy.session import Session

MISSING = 1  # `test -f` of an absent file


def after_first_deploy(session: Session, image: str, backup: str) -> None:
    settings = session.settings
    if backup or session.target.dry or settings.backup_command or not settings.db_path:
        return
    if not (wanted(settings, session.backend.backs_up_by_default) and has_database(settings)):
        return
    found = session.backend.one_off(image, ["test", "-f", settings.db_path])
    if found.exit_status == MISSING:
        session.ui.note(f"warning: no SQLite file at db_path {settings.db_path} in the release: the next deploy's "
                        f"backup would stop there; set deploy.environments.{settings.env}.db_path to the app's "
                        "database file (its APP_DB_PATH), db_path: null for an app without one, or "
                        "backup_command for another database")
