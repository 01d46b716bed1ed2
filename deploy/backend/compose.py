"""Compose on this machine: the stack runs where ``inv`` runs, built straight from the work tree."""

from __future__ import annotations

from collections.abc import Sequence

from invoke import Context

from .. import images, kept, preflight
from ..adopt import release as adopt
from ..config import Settings
from ..containers import Container
from ..errors import NotDeployed
from ..history import Record
from ..ops import deploy_command
from ..preflight import Item
from ..restart import Plan
from ..rollout import Outcome, rollout
from ..session import Session
from ..state import Snapshot
from ..target import LocalTarget, Result
from .base import Backend, Check


class ComposeBackend(Backend):
    name = "compose"
    #: Set by a rollback that found the files of the release it returns to.
    kept_release: kept.Kept | None = None

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        return cls(Session(settings, local, local)).session

    def prepare_rollback(self, release: Record, found: kept.Kept | None) -> None:
        self.kept_release = found
        if found is not None:
            kept.use(self.session.stack, found)

    def preflight(self, image: str) -> list[list[Check]]:
        stack = self.session.stack
        return [
            [lambda: preflight.engine(stack), lambda: preflight.compose(stack)],
            [
                preflight.in_order(self.compose_shape(image), lambda: preflight.compose_file(stack, image)),
                *self.host_checks(),
            ],
        ]

    def compose_shape(self, image: str) -> Check:
        found = self.kept_release
        if found is not None:
            # A rollback to a release whose files were kept: its own override, as it ran.
            return lambda: Item("compose shape", True, found.describe())
        # Writes this release's compose override (or removes a stale one): the checks below see the stack with it.
        return lambda: adopt.prepare(self.session, image)

    def host_checks(self) -> list[Check]:
        # Only checkable from here for a local stack; a host's port is its own business.
        return [lambda: preflight.public_port(self.session.settings, self.snapshot(upstream=False))]

    def snapshot(self, *, upstream: bool = True) -> Snapshot:
        return self.session.stack.snapshot(upstream=upstream)

    def rollout(self, image: str, revision: str, *, timeout: float | None, drain_beside: bool = False) -> Outcome:
        return rollout(self.session.stack, image, revision, say=self.session.ui.note, health_timeout=timeout,
                       defer=self.session.defer if drain_beside else None)

    def restart(self, plan: Plan, image: str, revision: str, *, timeout: float | None) -> Outcome | None:
        target, compose = self.session.target, self.session.stack.compose(image)
        if plan.hard:
            target.run(compose.restart(list(plan.services)), stream=True)
            return None
        # The rollout's `up --no-recreate --scale` creates the new app container from the compose file and env
        # file as they are now (the old one, left alone, keeps what it was created with).
        outcome = self.rollout(image, revision, timeout=timeout) if plan.roll else None
        for service in plan.one_by_one:
            self.session.ui.note(f"recreating {service}")
            target.run(compose.up([service], no_deps=True, force_recreate=True), stream=True)
        return outcome

    def restart_notes(self, plan: Plan, app: Container | None) -> list[str]:
        settings, notes = self.session.settings, []
        if plan.roll and app is not None:
            notes.append(f"{settings.app_service}: a new container from {app.image} (revision "
                         f"{(app.revision or '?')[:12]}) beside the old one, created with the env file and compose "
                         "settings as they are now")
        for service in plan.one_by_one:
            why = "it holds the public port: a moment of downtime" if service == settings.proxy_service \
                else "not behind the proxy, so it cannot be rolled"
            notes.append(f"{service}: recreated on its own ({why})")
        for service in plan.kept:
            notes.append(f"{service}: kept running, the switch reloads its configuration (--service {service} "
                         "restarts it, with a moment of downtime)")
        return notes

    def prune_images(self, keep: set[str]) -> list[str]:
        session = self.session
        return images.prune(session.target, session.settings, keep) if not session.target.dry else []

    def log_commands(self, services: Sequence[str], *, since: str | None, tail: int | None,
                     follow: bool) -> list[list[str]]:
        app = self.snapshot().newest_app
        return [self.session.stack.compose(app.image if app else None).logs(services, since=since, tail=tail,
                                                                            follow=follow)]

    def exec(self, command: Sequence[str], *, interactive: bool) -> int:
        """``compose run`` of the app service in the serving image: its environment, volumes and networks."""
        session, settings = self.session, self.session.settings
        serving = self.snapshot().serving
        if serving is None:
            raise NotDeployed(f"no app container serves {settings.project} on {session.where}, so there is no "
                              "image to run the command in", hint=f"deploy first: {deploy_command(session)}")
        if not interactive:
            return self.one_off(serving.image, command).exit_status
        return session.target.interact(session.stack.compose(serving.image).run(settings.app_service, command,
                                                                                tty=True))

    def one_off(self, image: str, command: Sequence[str]) -> Result:
        """``compose run --rm --no-deps -T`` of the app service in ``image``: its environment, volumes, networks."""
        argv = self.session.stack.compose(image).run(self.session.settings.app_service, command)
        return self.session.target.run(argv, check=False, watched=True)

    def lifecycle(self, action: str, services: Sequence[str], image: str | None) -> None:
        """``compose start|stop``: the containers as they are (stop: SIGTERM, then the stop grace period)."""
        compose = self.session.stack.compose(image)
        command = {"start": compose.start, "stop": compose.stop}[action]
        self.session.target.run(command(list(services)), stream=True)
