"""Compose on a host over SSH: one verified connection per task, a release directory per deploy."""

from __future__ import annotations

import sys

from invoke import Context

from droplet_deploy.core.config import Settings
from droplet_deploy.engines.base import Check
from droplet_deploy.engines.compose.backend import ComposeBackend
from droplet_deploy.host import checks, ship
from droplet_deploy.host.connect import connect
from droplet_deploy.session import Session
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction import clean
from droplet_deploy.transaction.release_files import Rollback
from droplet_deploy.transport.target import LocalTarget


class SshComposeBackend(ComposeBackend):
    name = "compose over ssh"
    backs_up_by_default = True
    ships_release = True

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        target = connect(c, settings, say=lambda text: print(text, file=sys.stderr, flush=True))
        # Compose commands about the running stack work from the release it was started from.
        target.cwd = ship.current_release_dir(target, settings)
        return cls(Session(settings, local, target)).session

    def prepare_release(self, revision: Revision) -> None:
        ship.prepare_release(self.session, revision)

    def release_directory(self, back_to: Rollback) -> str:
        """The release directory that shipped the revision a rollback returns to, while it is kept."""
        return ship.shipped_directory(self.session, back_to.record.revision)

    def host_checks(self) -> list[Check]:
        session = self.session
        found: list[Check] = [lambda: checks.disk(session), lambda: clean.disk_item(session)]
        path = session.settings.env_file_path
        if path:
            found.append(lambda: ship.env_file_check(session.target, path))
        return found
