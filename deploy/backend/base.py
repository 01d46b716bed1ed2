"""The interface every backend implements; see ``deploy.backend`` for the ones there are."""

from __future__ import annotations

from collections.abc import Sequence

from invoke import Context

from .. import preflight
from ..config import Settings
from ..containers import Container
from ..history import Record
from ..kept import Kept
from ..preflight import Item
from ..restart import Plan
from ..revision import Revision
from ..rollout import Outcome
from ..session import Session
from ..state import Snapshot
from ..target import LocalTarget, Result

Check = preflight.Check


class Backend:
    """What differs between the places a stack runs. Holds its session; steps reach it as ``session.backend``."""

    name = "base"
    #: Whether a deploy backs up first when ``backup_before_deploy`` is not set (production data lives here).
    backs_up_by_default = False
    #: Whether a deploy ships the revision's files somewhere before building (a "release" step).
    ships_release = False
    #: ``deploy.restart --hard``: what it runs and what that costs, for the line announcing it.
    hard_restart = ("`compose restart`", "this costs downtime, requests fail until they are back")
    #: Whether a restart that rolls the app creates it from the env file as it is now (else a deploy does).
    restart_applies_env_file = True

    def __init__(self, session: Session):
        self.session = session
        session.backend = self

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        raise NotImplementedError

    def require(self, feature: str) -> None:
        """Raise one clear line when this backend does not carry out ``feature`` (``"backups"``)."""

    def prepare_release(self, revision: Revision) -> None:
        """Make ``revision``'s files available where the build runs."""

    def prepare_rollback(self, release: Record, kept: Kept | None) -> None:
        """Make the files ``release`` ran with (``kept``: its compose file, override and env file, when they were
        kept) the ones compose runs from."""

    def preflight(self, image: str) -> list[list[Check]]:
        """The checks that must pass before anything running changes, in stages: the checks of a stage run at
        once, and a stage runs only when the ones before it passed."""
        raise NotImplementedError

    def run_preflight(self, image: str) -> list[Item]:
        """``preflight``'s checks for ``image``, reported in order; the first failure stops here."""
        ui = self.session.ui
        return preflight.run(self.preflight(image), lambda item: ui.check(item.ok, item.name, item.detail))

    def snapshot(self, *, upstream: bool = True) -> Snapshot:
        """What runs now; ``upstream=False`` when which container serves does not matter to the caller."""
        raise NotImplementedError

    def rollout(self, image: str, revision: str, *, timeout: float | None, drain_beside: bool = False) -> Outcome:
        """Replace the serving release with ``image``, zero downtime. ``drain_beside``: return once traffic has
        moved and proved itself, the old release draining meanwhile (``Session.defer``: the transaction waits for
        it before the lock is released); otherwise return once it is gone."""
        raise NotImplementedError

    def restart(self, plan: Plan, image: str, revision: str, *, timeout: float | None) -> Outcome | None:
        """Carry out a restart ``plan`` with the serving ``image`` at ``revision``: the app rolled (the outcome
        of that rollout), the services that cannot be rolled one at a time, or (``plan.hard``) all at once."""
        raise NotImplementedError

    def restart_notes(self, plan: Plan, app: Container | None) -> list[str]:
        """How ``restart(plan, ...)`` replaces each service, one line each, announced before it starts; ``app``
        is the serving app container whose image and revision it keeps."""
        return []

    def prune_images(self, keep: set[str]) -> list[str]:
        """Remove the app's old images beyond ``keep_images``; returns what was removed."""
        raise NotImplementedError

    # --- day two (deploy.logs, deploy.exec, deploy.start/stop, backups) ------------------------------------------

    def log_commands(self, services: Sequence[str], *, since: str | None, tail: int | None,
                     follow: bool) -> list[list[str]]:
        """The read-only commands that print the logs of ``services`` (all when none are named), run in turn."""
        raise NotImplementedError

    def exec(self, command: Sequence[str], *, interactive: bool) -> int:
        """``command`` in a fresh container of the serving image, set up as the app's own; its exit status."""
        raise NotImplementedError

    def one_off(self, image: str, command: Sequence[str]) -> Result:
        """``command`` in a fresh container of ``image``, set up as the app's own, its output shown as it comes
        (``pre_switch`` hooks in the new image; ``deploy.exec`` in the serving one)."""
        raise NotImplementedError

    def lifecycle(self, action: str, services: Sequence[str], image: str | None) -> None:
        """``start`` or ``stop`` ``services`` (all when none are named) of the release running ``image``; the
        caller records it and, after a start, waits until the public port answers."""
        raise NotImplementedError

    def backup_snapshot(self) -> Snapshot:
        """What a backup reads: its ``serving`` container is the one the database is copied from (on the host
        the toolkit reaches), its containers the ones whose logs are kept."""
        return self.snapshot()
