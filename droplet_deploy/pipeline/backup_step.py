"""The pipeline's backup step: a backup of the running stack before a deploy changes anything.

A failed backup raises, and the pipeline stops before the build: the deploy is aborted with the site untouched
(``--skip-backup`` deploys anyway and the history records it). With no app container running yet, as on a
first deploy, there is nothing to back up: that is said and the deploy goes on.
"""

from __future__ import annotations

from droplet_deploy.backup.create import create, has_database
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import BackupError, NoDatabaseFile, NothingToBackUp
from droplet_deploy.session import Session
from droplet_deploy.steps.revision import Revision


def wanted(settings: Settings, by_default: bool) -> bool:
    """``backup_before_deploy`` when set; otherwise the backend's default: on for a host (production data), off
    for the local stack."""
    if settings.backup_before_deploy is not None:
        return settings.backup_before_deploy
    return by_default


def backup_hook(session: Session, revision: Revision) -> str | None:
    """Back up before a deploy; returns the backup id for the release history (None when skipped)."""
    ui, settings = session.ui, session.settings
    if not wanted(settings, session.backend.backs_up_by_default):
        ui.note(f"off for {settings.env} (set backup_before_deploy: true to back up before each deploy)")
        return None
    if not has_database(settings):
        ui.note("db_path is null and no backup_command is set: the app has no database to back up")
        return None
    try:
        summary = create(session, note=f"before deploy of {revision.full}")
    except NothingToBackUp:
        ui.note("no app container running yet (first deploy): nothing to back up")
        return None
    except NoDatabaseFile as exc:
        raise BackupError(f"backup before deploy failed: {exc.message}",
                          hint=f"{exc.hint}; the deploy stopped before changing anything") from None
    except BackupError as exc:
        way_out = ("or deploy without it with --skip-backup (the history records it)" if settings.is_remote
                   else "or set backup_before_deploy: false for this environment")
        raise BackupError(f"backup before deploy failed: {exc.message}",
                          hint=f"the deploy stopped before changing anything; fix the backup {way_out}") from None
    if summary is None:
        return None
    ui.note(summary.line(session.where))
    return summary.manifest.id
