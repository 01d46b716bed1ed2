"""The contract every engine implements (``Backend``) and the restart plan it carries out; the engines are
``engines.compose`` (one Docker engine, here or over SSH) and ``engines.swarm`` (a Swarm cluster)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from invoke import Context

from droplet_deploy.core.config import Settings
from droplet_deploy.engines.snapshot import Container, Outcome, Snapshot
from droplet_deploy.session import Session
from droplet_deploy.steps import preflight
from droplet_deploy.steps.build import ServiceBuild
from droplet_deploy.steps.preflight import Item
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction.release_files import InUse, Rollback
from droplet_deploy.transport.target import LocalTarget, Result

Check = preflight.Check


@dataclass(frozen=True)
class RestartPlan:
    """What ``deploy.restart`` replaces, and how (``operations.restart.plan`` makes it, pure)."""

    roll: bool = False  # the app service, through the zero-downtime rollout
    one_by_one: tuple[str, ...] = ()  # recreated one service at a time, in this order
    left_running: tuple[str, ...] = ()  # running, left running on purpose (the proxy, unless named)
    hard: bool = False  # `compose restart` of ``services`` (none: all) at once
    services: tuple[str, ...] = ()
    app: str = "app"  # the app service's name, for the output

    def touches_traffic(self, snapshot: Snapshot) -> bool:
        """Whether the public port's answer depends on what this plan restarts: then it is waited for."""
        front = {snapshot.app_service, snapshot.proxy_service}
        if self.hard:
            return not self.services or bool(front & set(self.services))
        return self.roll or snapshot.proxy_service in self.one_by_one

    def describe(self) -> str:
        if self.hard:
            return f"{', '.join(self.services) or 'all services'} at once (--hard)"
        parts = ([f"{self.app} (rolled, no downtime)"] if self.roll else []) + \
            [f"{', '.join(self.one_by_one)} (one at a time)"] * bool(self.one_by_one)
        return ", ".join(parts) or "nothing"


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
        """Raise one clear line when this backend does not carry out ``feature`` (``"restore"``)."""

    def prepare_release(self, revision: Revision) -> None:
        """Make ``revision``'s files available where the build runs."""

    def preflight(self, image: str, *, back_to: Rollback | None = None) -> list[list[Check]]:
        """The checks that must pass before anything running changes, in stages: the checks of a stage run at
        once, and a stage runs only when the ones before it passed. ``back_to``: a rollback, checked with the
        files that release ran with."""
        raise NotImplementedError

    def run_preflight(self, image: str, *, back_to: Rollback | None = None) -> list[Item]:
        """``preflight``'s checks for ``image``, reported in order; the first failure stops here."""
        ui = self.session.ui
        return preflight.run(self.preflight(image, back_to=back_to),
                             lambda item: ui.check(item.ok, item.name, item.detail))

    def built_services(self) -> Sequence[ServiceBuild]:
        """The services besides the app with a ``build:`` of their own: built, verified and updated with the
        release (none where the engine does not build them)."""
        return ()

    def snapshot(self, *, upstream: bool = True) -> Snapshot:
        """What runs now; ``upstream=False`` when which container serves does not matter to the caller."""
        raise NotImplementedError

    def in_use(self) -> InUse:
        """The files a release runs with (compose file, override, env file): kept once it serves."""
        raise NotImplementedError

    @contextlib.contextmanager
    def ahead(self, image: str) -> Iterator[None]:
        """Around the steps between the build and the rollout (verify.build, the pre_switch hooks): start beside
        them what the rollout of ``image`` reads first, and what it may prepare without running anything of the
        image, where that is free; whatever the rollout did not take is undone at the end (nothing by default)."""
        yield

    def rollout(self, image: str, revision: str, *, timeout: float | None, drain_beside: bool = False,
                back_to: Rollback | None = None) -> Outcome:
        """Replace the serving release with ``image``, zero downtime. ``drain_beside``: return once traffic has
        moved and proved itself, the old release draining meanwhile (``Session.defer``: the transaction waits for
        it before the lock is released); otherwise return once it is gone. ``back_to``: a rollback to that
        release, run with the files it ran with."""
        raise NotImplementedError

    def restart(self, plan: RestartPlan, image: str, revision: str, *, timeout: float | None) -> Outcome | None:
        """Carry out a restart ``plan`` with the serving ``image`` at ``revision``: the app rolled (the outcome
        of that rollout), the services that cannot be rolled one at a time, or (``plan.hard``) all at once."""
        raise NotImplementedError

    def restart_notes(self, plan: RestartPlan, app: Container | None) -> list[str]:
        """How ``restart(plan, ...)`` replaces each service, one line each, announced before it starts; ``app``
        is the serving app container whose image and revision it keeps."""
        return []

    def prune_images(self, keep: Callable[[], set[str]]) -> list[str]:
        """Remove the app's old images beyond ``keep_images`` except ``keep()``'s, asked once they are listed;
        returns what was removed."""
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
