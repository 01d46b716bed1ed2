"""`inv backup` and `backup.list|verify|prune|restore`: backups kept on the environment's host."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from invoke import Collection, task

from droplet_deploy.core import validate
from droplet_deploy.core.errors import UsageError
from droplet_deploy.tasks.flags import (
    ENV_HELP,
    HOST_HELP,
    CountedTask,
    clean_errors,
    number_flag,
    session_for,
)

if TYPE_CHECKING:  # annotations only: the task bodies import what they run
    from droplet_deploy.backup import manifest as mf
    from droplet_deploy.core.ui import Reporter

WHERE = {"env": ENV_HELP, "host": HOST_HELP}


def _report(ui: Reporter):
    return lambda check: ui.check(check.ok, check.name, check.detail)


@task(help={**WHERE, "download": "also copy the backup to DIR/<id> on this machine (checked after the copy)"})
@clean_errors
def create(c, env=None, host=None, download=None):
    """Back up the running stack on its host: database, logs, compose file, .env, revision and image."""
    from droplet_deploy import backup as backups
    from droplet_deploy.backup.store import download_dir
    into = download_dir(download) if download else None
    with session_for(c, env, host) as session:
        summary = backups.create(session)
        if summary is None:
            session.ui.line(f"planned a backup of {session.settings.env} on {session.where} (dry run)")
            return
        line = summary.line(session.where)
        if into is not None:
            local = backups.download(session.target, session.settings, summary.manifest, into)
            backups.verify_local(local, report=lambda check: None)
            line += f"; downloaded to {local}"
        session.ui.line(line)


@task(name="list", help=WHERE)
@clean_errors
def list_(c, env=None, host=None):
    """The backups kept on the host, oldest first."""
    from droplet_deploy import backup as backups
    from droplet_deploy.backup import manifest as mf
    from droplet_deploy.backup.store import root, verdicts
    with session_for(c, env, host) as session:
        found = backups.listing(session.target, session.settings)
        where = f"{root(session.settings)} on {session.where}"
        if not (found.backups or found.unreadable or found.unfinished or found.others):
            session.ui.line(f"no backups of {session.settings.env} in {where}")
            return
        ui = session.ui
        checked = verdicts(session.target, session.settings)
        ui.line(f"backups of {session.settings.env} in {where}:")
        ui.line(f"  {'ID':<32} {'REVISION':<12}  {'SIZE':>10}  {'FILES':>5}  {'CHECK':<7}  IMAGE")
        for m in found.backups:
            check = "-" if m.id not in checked else "passed" if checked[m.id] else "FAILED"
            ui.line(f"  {m.id:<32} {m.revision[:12]:<12}  {mf.human_size(m.size):>10}  {len(m.files):>5}  "
                    f"{check:<7}  {m.image}" + (f"  ({m.note})" if m.note else ""))
        for place, ids in backups.copies.listed(session).items():
            ui.line(f"  copies at {place}: " + (", ".join(ids) if ids else "none"))
        for name in found.unreadable:
            ui.line(f"  {name:<32} (manifest unreadable: `inv backup.verify {name}` says why)")
        for name in found.unfinished:
            ui.line(f"  {name:<32} (unfinished: interrupted or being written; pruned once a day old)")
        for name in found.others:
            ui.line(f"  {name:<32} (not a backup the toolkit named: never counted, pruned or touched)")


@task(help={**WHERE, "backup-id": "a backup id from `inv backup.list`, or the path of a downloaded backup"})
@clean_errors
def verify(c, backup_id, env=None, host=None):
    """Check a backup: every file's sha256, and the database copy opens and passes its integrity check."""
    from droplet_deploy import backup as backups
    from droplet_deploy.backup import manifest as mf
    from droplet_deploy.core.ui import Reporter
    if _is_local_path(backup_id):
        ui = Reporter()
        found = backups.verify_local(backup_id, _report(ui))
        ui.line(f"backup {found.id} at {backup_id} is intact ({len(found.files)} files, {mf.human_size(found.size)})")
        return
    with session_for(c, env, host) as session:
        found = backups.verify(session, backup_id, _report(session.ui))
        session.ui.line(f"backup {found.id} is intact ({len(found.files)} files, {mf.human_size(found.size)})")


@task(klass=CountedTask, help={**WHERE, "keep": "how many of the newest backups to keep (default: deploy.keep_backups)"})
@clean_errors
def prune(c, keep=None, env=None, host=None):
    """Delete all but the newest N backups (N: --keep or deploy.keep_backups)."""
    from droplet_deploy import backup as backups
    from droplet_deploy.transaction import retention as releases
    keep = number_flag("keep", keep, validate.KEEP)
    with session_for(c, env, host) as session:
        count = session.settings.keep_backups if keep is None else keep
        # Never the backup a rollback --with-data would restore.
        spare = tuple(releases.needed_now(session).backups)
        removed = backups.prune(session.target, session.settings, count, protect=spare)
        session.ui.line(f"kept the newest {count} backups of {session.settings.env}"
                        + (f"; removed {', '.join(removed)}" if removed else "; nothing to remove"))


@task(help={**WHERE, "backup-id": "the backup to restore (see `inv backup.list`)",
            "yes": "restore without asking (for scripts); a backup of the current state is still taken first",
            "from": "take the backup from this backup_copy place (ssh://... or s3://...) onto the host first"})
@clean_errors
def restore(c, backup_id, yes=False, env=None, host=None, from_=None):
    """Restore a backup's database into the running stack, after backing up the current state."""
    from droplet_deploy import backup as backups
    if not yes and not sys.stdin.isatty():
        raise UsageError("backup.restore replaces the live database and there is no terminal to confirm on",
                         hint="pass --yes to restore without asking")
    with session_for(c, env, host) as session:
        def confirm(found: mf.Manifest) -> bool:
            return yes or _ask(session, found)

        if from_:
            backups.copies.bring_back(session, from_, backup_id)
        done = backups.restore(session, backup_id, confirm=confirm, report=_report(session.ui))
        if done is None:
            session.ui.line("restore cancelled; nothing was changed")
            return
        m = done.manifest
        before = f"; the state before is backup {done.safety.manifest.id}" if done.safety else ""
        verb = "planned restore of" if session.target.dry else "restored"
        session.ui.line(f"{verb} {m.id} (revision {m.revision[:12]}, made {m.created_at}) into "
                        f"{session.settings.project} on {session.where} in {done.seconds:.1f}s{before}")


def _ask(session, found: mf.Manifest) -> bool:
    settings = session.settings
    answer = input(f"Restore backup {found.id} (revision {found.revision[:12]}, made {found.created_at}) into "
                   f"{settings.project} on {session.where}? The live database is replaced; its current state is "
                   f"backed up first. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _is_local_path(text: str) -> bool:
    return "/" in text or os.sep in text or os.path.isdir(text)


ns = Collection("backup")
ns.add_task(create, default=True)
ns.add_task(list_, name="list")
ns.add_task(verify)
ns.add_task(prune)
ns.add_task(restore)
