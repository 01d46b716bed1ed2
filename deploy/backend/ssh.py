"""Compose on a host over SSH: one verified connection per task, a release directory per deploy."""

from __future__ import annotations

import sys

from invoke import Context

from ..config import Settings
from ..history import Record
from ..kept import Kept
from ..remote import checks, release
from ..remote.connect import connect
from ..revision import Revision
from ..session import Session
from ..target import LocalTarget
from .base import Check
from .compose import ComposeBackend


class SshComposeBackend(ComposeBackend):
    name = "compose over ssh"
    backs_up_by_default = True
    ships_release = True

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        target = connect(c, settings, say=lambda text: print(text, file=sys.stderr, flush=True))
        # Compose commands about the running stack work from the release it was started from.
        target.cwd = release.current_release_dir(target, settings)
        return cls(Session(settings, local, target)).session

    def prepare_release(self, revision: Revision) -> None:
        release.prepare_release(self.session, revision)

    def prepare_rollback(self, record: Record, found: Kept | None) -> None:
        release.use_shipped_release(self.session, record)
        super().prepare_rollback(record, found)  # after: relative paths resolve in the release directory

    def host_checks(self) -> list[Check]:
        found: list[Check] = [lambda: checks.disk(self.session)]
        if self.session.settings.env_file:
            found.append(lambda: release.env_file_check(self.session.target, self.session.settings))
        return found
