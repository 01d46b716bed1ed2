"""Compose on this machine: the stack runs where ``inv`` runs, built straight from the work tree."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence

from invoke import Context

from droplet_deploy.commands import docker
from droplet_deploy.core import signals
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import NotDeployed
from droplet_deploy.engines.base import Backend, Check, RestartPlan
from droplet_deploy.engines.compose import checks, frontend, override_file, release_services
from droplet_deploy.engines.compose.compose_file import ReleaseServices
from droplet_deploy.engines.compose.rollout import rollout
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Container, Outcome, Snapshot
from droplet_deploy.session import Session
from droplet_deploy.steps import images, preflight
from droplet_deploy.steps.build import ServiceBuild, service_image
from droplet_deploy.steps.preflight import Item
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction import clean
from droplet_deploy.transaction.release_files import InUse, Rollback
from droplet_deploy.transport.target import LocalTarget, Result


class ComposeBackend(Backend):
    name = "compose"

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        return cls(Session(settings, local, local)).session

    @functools.cached_property
    def stack(self) -> Stack:
        """One per task: the compose binary is detected once and every step shares it. It carries the compose
        override the last deploy wrote, if any; a deploy replaces it with its own (``override_file.prepare``)."""
        session = self.session
        return Stack(session.target, session.settings,
                     overrides=override_file.existing_overrides(session.target, session.state_dir))

    def stack_for(self, back_to: Rollback | None) -> Stack:
        """The stack a step runs: this release's, or for a rollback the one with the files that release ran with."""
        if back_to is None:
            return self.stack
        return self.stack.returning_to(back_to.files, self.release_directory(back_to))

    def release_directory(self, back_to: Rollback) -> str:
        """Where the compose file of the release a rollback returns to was read from: the project, here."""
        return self.session.target.cwd

    def preflight(self, image: str, *, back_to: Rollback | None = None) -> list[list[Check]]:
        stack = self.stack_for(back_to)
        return [
            [lambda: preflight.engine(stack.target), lambda: checks.compose(stack)],
            [
                preflight.in_order(self.compose_shape(stack, image, back_to),
                                   lambda: checks.compose_file(stack, image)),
                *self.host_checks(),
                # A first deploy must take over the project that runs the file today, with its volumes.
                *([] if back_to else [lambda: checks.takeover_items(stack, local=not self.ships_release)]),
                *([lambda: self.services_kept(stack, back_to)] if back_to is not None else []),
            ],
        ]

    def services_kept(self, stack: Stack, back_to: Rollback) -> Item:
        """A rollback brings back each service's own image of that release: every one must still be here."""
        tag = Revision.of(back_to.record.revision).tag
        wanted = [service_image(self.session.settings, b.service, tag) for b in self.services_of(stack).built]
        missing = [i for i in wanted if not self.session.target.probe(docker.image_inspect(i, "{{.Id}}")).ok]
        if missing:
            return Item("service images", False, f"{', '.join(missing)} no longer kept (pruned): roll back to a "
                                                 "newer release with --to REV")
        return Item("service images", True, f"{len(wanted)} kept" if wanted else "no service built of its own")

    def compose_shape(self, stack: Stack, image: str, back_to: Rollback | None) -> Check:
        found = back_to.files if back_to is not None else None
        if found is not None:
            # A rollback to a release whose files were kept: its own override, as it ran.
            return lambda: Item("compose shape", True, found.describe())
        # Writes this release's compose override (or removes a stale one): the checks below see the stack with it.
        return lambda: override_file.prepare(self.session, stack, image)

    def host_checks(self) -> list[Check]:
        # Only checkable from here for a local stack; a host's port is its own business.
        return [lambda: checks.public_port(self.session.settings, self.snapshot(upstream=False), self.session.target),
                lambda: clean.disk_item(self.session)]

    def snapshot(self, *, upstream: bool = True) -> Snapshot:
        return self.stack.snapshot(upstream=upstream)

    def in_use(self) -> InUse:
        return self.stack.in_use()

    @contextlib.contextmanager
    def ahead(self, image: str) -> Iterator[None]:
        """The first read of what runs and, when the app service goes first in the release (no service updated
        before it), the new app container created, not started: the rollout then only starts it."""
        first, _ = self.around_app(self.stack)
        self.stack.read_ahead(None if first else image)
        try:
            yield
        finally:
            with signals.shielded():
                dropped = self.stack.drop_ahead()
            if dropped is not None:
                self.session.ui.note(f"removed {dropped.name}, created for this release and never started")

    def rollout(self, image: str, revision: str, *, timeout: float | None, drain_beside: bool = False,
                back_to: Rollback | None = None) -> Outcome:
        session = self.session
        stack = self.stack_for(back_to)
        # Every service on the release goes with the app: a rollback's from the compose file kept with it.
        settings, front = session.settings, session.settings.frontend_service
        first, after = self.around_app(stack)
        wait = timeout or settings.health_timeout
        release_services.update(stack, image, revision, first, say=session.ui.note, timeout=wait)
        outcome = rollout(stack, image, revision, say=session.ui.note, health_timeout=timeout,
                          defer=session.defer if drain_beside else None)
        if front is not None:
            self.roll_frontend(stack, image, revision, timeout=timeout, first_start=outcome.first_deploy)
        release_services.update(stack, image, revision, after, say=session.ui.note, timeout=wait)
        if back_to is not None and back_to.files is not None:
            override_file.install(session.target, session.state_dir, back_to.files)
        return outcome

    def roll_frontend(self, stack: Stack, image: str, revision: str, *, timeout: float | None,
                      first_start: bool) -> None:
        """The frontend through the same zero-downtime rollout as the app, on its own upstream file; on the
        stack's first start it came up with it and is only proven."""
        session, front = self.session, self.session.settings.frontend_service
        assert front is not None
        if first_start:
            release_services.update(stack, image, revision, [front], say=session.ui.note,
                                    timeout=timeout or session.settings.health_timeout)
            return
        session.ui.note(f"rolling {front} beside its old container(s)")
        rollout(stack.about(frontend.settings_for(session.settings)), image, revision, say=session.ui.note,
                health_timeout=timeout)

    def around_app(self, stack: Stack) -> tuple[list[str], list[str]]:
        """The release's services besides the frontend (it rolls on its own): those updated before the app's
        rollout (``services_first``), and those after it."""
        front = self.session.settings.frontend_service
        return release_services.in_order(self.session.settings,
                                         [n for n in self.services_of(stack).names if n != front])

    def services_of(self, stack: Stack) -> ReleaseServices:
        if stack.services is None:
            stack.services = override_file.read_release_services(self.session, stack)
        return stack.services

    def built_services(self) -> Sequence[ServiceBuild]:
        return self.services_of(self.stack).built

    def restart(self, plan: RestartPlan, image: str, revision: str, *, timeout: float | None) -> Outcome | None:
        target, compose = self.session.target, self.stack.compose(image)
        if plan.hard:
            target.run(compose.restart(list(plan.services)), stream=True)
            return None
        # The rollout's `up --no-recreate --scale` creates the new app container from the compose file and env
        # file as they are now (the old one, left alone, keeps what it was created with).
        outcome = rollout(self.stack, image, revision, say=self.session.ui.note, health_timeout=timeout) \
            if plan.roll else None
        for service in plan.one_by_one:
            if service == self.session.settings.frontend_service:  # it takes traffic at /: rolled, never recreated
                self.roll_frontend(self.stack, image, revision, timeout=timeout, first_start=False)
                continue
            self.session.ui.note(f"recreating {service}")
            target.run(compose.up([service], no_deps=True, force_recreate=True), stream=True)
        return outcome

    def restart_notes(self, plan: RestartPlan, app: Container | None) -> list[str]:
        settings, notes = self.session.settings, []
        if plan.roll and app is not None:
            notes.append(f"{settings.app_service}: a new container from {app.image} (revision "
                         f"{(app.revision or '?')[:12]}) beside the old one, created with the env file and compose "
                         "settings as they are now")
        for service in plan.one_by_one:
            if service == settings.frontend_service:
                notes.append(f"{service}: a new container beside the old one, rolled like {settings.app_service}")
                continue
            why = "it holds the public port: a moment of downtime" if service == settings.proxy_service \
                else "not behind the proxy, so it cannot be rolled"
            notes.append(f"{service}: recreated on its own ({why})")
        for service in plan.left_running:
            notes.append(f"{service}: kept running, the switch reloads its configuration (--service {service} "
                         "restarts it, with a moment of downtime)")
        return notes

    def prune_images(self, keep: Callable[[], set[str]]) -> list[str]:
        session = self.session
        if session.target.dry:
            return []
        pruned = images.prune(session.target, session.settings, keep)
        built = [b.service for b in self.built_services()]
        if not built:
            return pruned
        running = {c.image for c in self.snapshot(upstream=False).containers}
        return pruned + images.prune_services(session.target, session.settings, built, keep() | running)

    def log_commands(self, services: Sequence[str], *, since: str | None, tail: int | None,
                     follow: bool) -> list[list[str]]:
        app = self.snapshot().newest_app
        return [self.stack.compose(app.image if app else None).logs(services, since=since, tail=tail,
                                                                    follow=follow)]

    def exec(self, command: Sequence[str], *, interactive: bool) -> int:
        """``compose run`` of the app service in the serving image: its environment, volumes and networks."""
        session, settings = self.session, self.session.settings
        serving = self.snapshot().serving
        if serving is None:
            raise NotDeployed(f"no app container serves {settings.project} on {session.where}, so there is no "
                              "image to run the command in", hint=f"deploy first: {session.deploy_command()}")
        if not interactive:
            return self.one_off(serving.image, command).exit_status
        return session.target.interact(self.stack.compose(serving.image).run(settings.app_service, command,
                                                                             tty=True))

    def one_off(self, image: str, command: Sequence[str]) -> Result:
        """``compose run --rm --no-deps -T`` of the app service in ``image``: its environment, volumes, networks."""
        argv = self.stack.compose(image).run(self.session.settings.app_service, command)
        return self.session.target.run(argv, check=False, watched=True)

    def lifecycle(self, action: str, services: Sequence[str], image: str | None) -> None:
        """``compose start|stop``: the containers as they are (stop: SIGTERM, then the stop grace period)."""
        compose = self.stack.compose(image)
        command = {"start": compose.start, "stop": compose.stop}[action]
        self.session.target.run(command(list(services)), stream=True)
