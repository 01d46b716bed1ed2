"""A Swarm cluster through its manager: the same compose file, deployed as a stack with the gated rollout of
``deploy.swarm`` (image to every node, start-first behind the revision gate, every task proven, rolled back when a
task never proves itself).

The manager is this machine's engine (no ``host``) or a host reached over the same verified SSH connection as
``SshComposeBackend``. The image is built on the manager and sent to the other nodes (``swarm_nodes``). The
stack file is planned from the compose file at each rollout and kept, per revision, in the state directory, so a
rollback redeploys every service of the stack exactly as that release ran, from the kept image.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from invoke import Context

from droplet_deploy.commands import files
from droplet_deploy.commands import swarm as swarm_cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import BackupError, NotDeployed, PreflightFailed, RolloutFailed, UsageError
from droplet_deploy.engines.base import Backend, Check, RestartPlan
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Container, Outcome, Snapshot
from droplet_deploy.engines.swarm import rollout as swarm_rollout
from droplet_deploy.engines.swarm import stackfile, state_files
from droplet_deploy.engines.swarm.day_two import restart_note, restarted, scaling, settled
from droplet_deploy.engines.swarm.distribute import NodeEngine, missing_on, node_engine
from droplet_deploy.engines.swarm.one_off import env_file_text, planned_app
from droplet_deploy.engines.swarm.registry import ImageRegistry
from droplet_deploy.engines.swarm.snapshot import service_container, stopped_containers, task_container
from droplet_deploy.engines.swarm.stackfile import REVISION_LABEL
from droplet_deploy.engines.swarm.state import (
    UPDATE_FAILED,
    Service,
    image_on,
    manager_node_id,
    node_hostnames,
    parse_attachable,
    read_stack,
)
from droplet_deploy.host import ship as release
from droplet_deploy.host.connect import connect
from droplet_deploy.session import Session
from droplet_deploy.steps import images
from droplet_deploy.steps.preflight import Item
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction.release_files import InUse, Rollback
from droplet_deploy.transport.target import LocalTarget, Result

MIN_HEALTH_START = 60.0  # seconds a new task may take to pass its first check before its failures count
STOP_WAIT = 120.0  # seconds stopped tasks get to exit (beyond the app's stop grace period, 30 s in the reference)


class SwarmBackend(Backend):
    name = "swarm"
    hard_restart = ("`docker service update --force` of each service",
                    "they all roll at once, each task by task as its update_config says")
    # A forced update keeps the service's spec: the environment it was deployed with (a deploy plans it again).
    restart_applies_env_file = False

    def __init__(self, session: Session):
        super().__init__(session)
        # On a manager over SSH the files a build needs are shipped there first, and a deploy backs up first
        # (production data), as for compose over SSH.
        self.ships_release = self.backs_up_by_default = session.settings.is_remote

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        if not settings.is_remote:
            return cls(Session(settings, local, local)).session
        target = connect(c, settings, say=lambda text: print(text, file=sys.stderr, flush=True))
        target.cwd = release.current_release_dir(target, settings)
        return cls(Session(settings, local, target)).session

    # --- the pieces every step needs -------------------------------------------------------------------------

    @property
    def stack_name(self) -> str:
        return self.session.settings.project

    @functools.cached_property
    def compose(self) -> Stack:
        """The compose file as compose reads it: a stack file is planned from its model (``compose config``)."""
        return Stack(self.session.target, self.session.settings)

    def compose_for(self, back_to: Rollback | None) -> Stack:
        """The compose file a rollout plans from: this release's, or on a host the one shipped with the release a
        rollback returns to (while its directory is kept)."""
        if back_to is None or not self.session.settings.is_remote:
            return self.compose
        return self.compose.returning_to(None, release.shipped_directory(self.session, back_to.record.revision))

    @property
    def image_registry(self) -> ImageRegistry | None:
        image = self.session.settings.swarm_registry_image
        return ImageRegistry(self.stack_name, image) if image and self.nodes else None

    @property
    def nodes(self) -> list[NodeEngine]:
        return [node_engine(address) for address in self.session.settings.swarm_nodes]

    def release_of(self, image: str, revision: str) -> swarm_rollout.SwarmRelease:
        settings = self.session.settings
        return swarm_rollout.SwarmRelease(
            stack=self.stack_name, stack_file=self.stack_file(revision), image=image, revision=revision,
            replicas=settings.replicas, app_service=settings.app_service, proxy_service=settings.proxy_service,
            app_port=settings.app_port, health_path=settings.health_path)

    def stack_file(self, revision: str) -> str:
        return posixpath.join(self.session.state_dir, "swarm",
                              state_files.stack_file_name(self.stack_name, Revision.of(revision).tag))

    def prune_state_files(self, serving: str) -> None:
        """Remove the stack files of releases not in service and one-off env files left by killed runs: they
        hold the env file's values."""
        target, directory = self.session.target, posixpath.join(self.session.state_dir, "swarm")
        listed = target.probe(files.list_names(directory))
        if target.dry or not listed.ok:
            return
        for name in state_files.done_with(listed.stdout.split(), self.stack_name, Revision.of(serving).tag,
                                          time.time_ns()):
            target.run(files.remove_file(posixpath.join(directory, name)), check=False)

    def write_stack_file(self, image: str, revision: str, *, timeout: float | None = None,
                         compose: Stack | None = None) -> list[str]:
        """Plan the stack file of this release from the compose file (as compose would run it) and write it,
        with the proxy's config beside it; returns what the plan left out or replaced."""
        session = self.session
        plan = self.stack_plan(image, revision, timeout=timeout)
        stack, notes = self.render(plan, compose or self.compose)
        session.target.run(files.mkdir_p(posixpath.dirname(plan.proxy_config_file)))
        session.target.write_text(plan.proxy_config_file, stackfile.proxy_conf(plan))
        # The model inlines the env file (secrets included): the stack file is the owner's only, as the env file is.
        session.target.write_text(self.stack_file(revision), stackfile.to_yaml(stack), mode=0o600)
        return notes

    def stack_plan(self, image: str, revision: str, *, timeout: float | None = None) -> stackfile.StackPlan:
        settings = self.session.settings
        directory = posixpath.join(self.session.state_dir, "swarm")
        return stackfile.StackPlan(
            stack=self.stack_name, image=image, revision=revision, public_port=settings.public_port,
            proxy_image=settings.proxy_image, proxy_config_file=posixpath.join(directory, f"{self.stack_name}-proxy.conf"),
            app_service=settings.app_service, proxy_service=settings.proxy_service, replicas=settings.replicas,
            app_port=settings.app_port, health_path=settings.health_path,
            health_interval=max(1.0, settings.health_interval),
            max_body_mb=settings.max_body_mb, read_timeout=settings.read_timeout,
            health_start_period=max(MIN_HEALTH_START, timeout or settings.health_timeout))

    def render(self, plan: stackfile.StackPlan, compose: Stack) -> tuple[dict, list[str]]:
        """The stack file of ``plan`` from the compose model (``docker compose config``), and its notes."""
        session, settings, image = self.session, self.session.settings, plan.image
        model = session.target.probe([*compose.compose(image).config(quiet=False), "--format", "json"],
                                     check=True)
        try:
            stack, notes = stackfile.render(json.loads(model.stdout or "{}"), plan)
        except ValueError as exc:
            hint = getattr(exc, "hint", "the app service must be in the compose file (deploy.app_service)")
            raise PreflightFailed(f"[{session.where}] {settings.compose_file} cannot run as a stack: {exc}",
                                  hint=hint) from None
        return stack, notes

    # --- the interface ---------------------------------------------------------------------------------------

    def require(self, feature: str) -> None:
        if feature == "restore":
            self._app_only_on_manager()

    def _app_only_on_manager(self) -> None:
        """A task's volume lives on the node that runs it: data put back into the manager's copy reaches every
        replica only when every replica runs there (one node, or the app placed on the manager)."""
        settings, target = self.session.settings, self.session.target
        state = read_stack(target, self.stack_name)
        here = manager_node_id(target)
        elsewhere = {t.node_id for t in state.running_tasks(settings.app_service) if t.node_id != here}
        if elsewhere:
            hostnames = node_hostnames(target)
            raise UsageError(f"restore on engine: swarm needs every task of {self.stack_name}_{settings.app_service} on "
                             f"the manager, and some run on {', '.join(sorted(hostnames.get(n, n[:12]) for n in elsewhere))}: "
                             "each node's volume is a copy of its own",
                             hint="place the app on the manager (deploy.placement.constraints: [node.role == manager]) "
                                  "and deploy, or restore on each node by hand (docs/swarm.md, \"Backups on a swarm\")")

    def prepare_release(self, revision: Revision) -> None:
        release.prepare_release(self.session, revision)

    def preflight(self, image: str, *, back_to: Rollback | None = None) -> list[list[Check]]:
        # A rollback is stack-wide: the stack file of that release is planned again and deployed with its image,
        # nothing built, so the image must still be on every node.
        return [[self._manager_check], [lambda: self._image_check(image, rolling_back=back_to is not None)]]

    def _manager_check(self) -> Item:
        target = self.session.target
        if target.dry:
            return Item("swarm manager", True, "not checked in a dry run")
        cluster = swarm_rollout.preflight(target, self.release_of("", "0" * 40), self.nodes)
        ready = sum(1 for n in cluster if n.schedulable)
        return Item("swarm manager", True, f"{ready}/{len(cluster)} node(s) ready and active, "
                                           f"room for {self.session.settings.replicas} replicas + 1 while updating")

    def _image_check(self, image: str, *, rolling_back: bool) -> Item:
        target, nodes = self.session.target, self.nodes
        if target.dry or image_on(target, image) is None:
            return Item("image on every node", True, f"built on the manager, then sent to {len(nodes)} other node(s)")
        missing = missing_on(target, image, nodes)
        if missing and rolling_back:
            return Item("image on every node", False, f"{image} is gone from {', '.join(missing)}: deploy the "
                                                      "revision again (it is rebuilt) instead of rolling back")
        sent = f", sent to {', '.join(missing)} at the rollout" if missing else ""
        return Item("image on every node", True, f"{image} on the manager and {len(nodes) - len(missing)}/"
                                                 f"{len(nodes)} other node(s){sent}")

    def snapshot(self, *, upstream: bool = True) -> Snapshot:
        """The stack's tasks as the core reads containers: one per task, named ``<service>.<slot>@<node>``. With
        ``upstream``, every running app task is asked which revision it serves (its own address); without, a
        task's revision is the one its service was deployed with."""
        settings, target = self.session.settings, self.session.target
        state = read_stack(target, self.stack_name)
        if not state.services:
            return Snapshot(settings.app_service, settings.proxy_service, ())
        hostnames = node_hostnames(target)
        proven: dict[str, str | None] = {}
        if upstream and state.running_tasks(settings.proxy_service):
            release_like = self.release_of("", "")
            for proof in swarm_rollout.prove_tasks(target, release_like, state, hostnames, None):
                proven[proof.task_id] = proof.verdict.revision
        containers = [task_container(short, task, state, hostnames, proven)
                      for short in (settings.app_service, settings.proxy_service)
                      for task in sorted(state.live_tasks(short), key=lambda t: (t.slot or 0, t.timestamp))]
        containers += stopped_containers(state, (settings.app_service, settings.proxy_service))
        # The proxy resolves the app's tasks by name on each request: every task that passed the revision gate.
        routed = f"tasks.{settings.app_service}" if upstream and state.running_tasks(settings.proxy_service) else None
        return Snapshot(settings.app_service, settings.proxy_service, tuple(containers), routed)

    def backup_snapshot(self) -> Snapshot:
        """The stack's tasks on the manager (the engine the toolkit reaches): the database is copied from a
        running app task there, and the logs of those tasks are kept."""
        settings, target = self.session.settings, self.session.target
        state = read_stack(target, self.stack_name)
        here = manager_node_id(target)
        hostnames = node_hostnames(target) if state.services else {}
        app_tasks = state.running_tasks(settings.app_service)
        if app_tasks and not any(t.node_id == here for t in app_tasks):
            elsewhere = sorted({hostnames.get(t.node_id, t.node_id[:12]) for t in app_tasks})
            raise BackupError(f"no task of {self.stack_name}_{settings.app_service} runs on the manager "
                              f"{hostnames.get(here, here[:12])} (only on {', '.join(elsewhere)}): a backup copies "
                              "the database from a task on the node the toolkit reaches",
                              hint="place the app on the manager (deploy.placement.constraints: "
                                   "[node.role == manager]), or set db_path: null when it keeps no database")
        containers = [task_container(short, task, state, hostnames, {})
                      for short in (settings.app_service, settings.proxy_service)
                      for task in state.running_tasks(short) if task.node_id == here]
        return Snapshot(settings.app_service, settings.proxy_service, tuple(containers))

    def in_use(self) -> InUse:
        return self.compose.in_use()

    def rollout(self, image: str, revision: str, *, timeout: float | None, drain_beside: bool = False,
                back_to: Rollback | None = None) -> Outcome:
        # Swarm's update stops the old tasks itself, before it reports converged: nothing is left to drain.
        session = self.session
        seconds = timeout or session.settings.health_timeout
        for note in self.write_stack_file(image, revision, timeout=seconds, compose=self.compose_for(back_to)):
            session.ui.note(note)
        before = read_stack(session.target, self.stack_name).service(session.settings.app_service)
        kept = self.release_of(image, revision)
        # The health timeout bounds the whole wait: convergence of every task and the proof of each.
        if back_to is not None:
            report = swarm_rollout.rollback(session.target, kept, nodes=self.nodes, timeout=seconds)
        else:
            report = swarm_rollout.rollout(session.target, kept, nodes=self.nodes, timeout=seconds,
                                           registry=self.image_registry)
        self.prune_state_files(revision)
        proofs = report.proofs
        first = proofs[0] if proofs else None
        served = None if first is None else service_container(session.settings.app_service, first.task_id,
                                                       f"{self.stack_name}_{session.settings.app_service}",
                                                       image, revision)
        previous = None if before is None else service_container(
            session.settings.app_service, before.id, before.name, before.image, before.labels.get(REVISION_LABEL))
        proof = f"every replica's own health answer ({len(proofs)}/{len(proofs)} tasks)" if proofs else ""
        return Outcome(served, previous, first_deploy=before is None, proof=proof)

    def restart(self, plan: RestartPlan, image: str, revision: str, *, timeout: float | None) -> Outcome | None:
        """A forced rolling update of the stack's services (``docker service update --force``): Swarm replaces
        each task, start-first behind the revision gate for the app; then every app task is proven again."""
        session = self.session
        state = read_stack(session.target, self.stack_name)
        names = restarted(plan, session.settings.app_service, list(state.services))
        for short in names:
            service = state.services[short]
            session.ui.note(f"rolling {service.name} (docker service update --force)")
            session.target.run(swarm_cmd.service_update_image(service.name, service.image, force=True))
        if session.target.dry:
            return None
        deadline = time.monotonic() + max(timeout or session.settings.health_timeout, MIN_HEALTH_START) * 2
        for short in names:
            self._replaced(short, {t.id for t in state.live_tasks(short)}, deadline)
        rows = swarm_rollout.status(session.target, self.stack_name, self.release_of(image, revision))
        bad = [r for r in rows if not r.verdict.ok or r.verdict.revision not in (None, revision)]
        if bad:
            raise RolloutFailed("; ".join(r.describe() for r in bad),
                                hint=f"`docker service ps {self.stack_name}_{session.settings.app_service}` says why")
        return Outcome(None, None, first_deploy=False, proof=f"every replica's own health answer ({len(rows)} tasks)")

    def restart_notes(self, plan: RestartPlan, app: Container | None) -> list[str]:
        settings = self.session.settings
        state = read_stack(self.session.target, self.stack_name)
        notes = [restart_note(settings.app_service, settings.proxy_service, self.stack_name, short, app)
                 for short in restarted(plan, settings.app_service, list(state.services))]
        notes += [f"{short}: kept running (it resolves the app's tasks on each request; --service {short} restarts "
                  "it, with a moment of downtime)" for short in plan.left_running]
        return notes

    def _replaced(self, short: str, old: set[str], deadline: float) -> None:
        """Wait until every task of ``short`` that runs is a new one (none of ``old`` is still wanted)."""
        while True:
            state = read_stack(self.session.target, self.stack_name)
            service, live = state.service(short), state.live_tasks(short)
            if service is not None and service.update_state in UPDATE_FAILED:
                raise RolloutFailed(f"{service.name}: Swarm stopped the restart ({service.update_state}: "
                                    f"{service.update_message})", hint=f"`docker service ps {service.name}` says why")
            if live and all(t.running and t.id not in old for t in live):
                return
            if time.monotonic() > deadline:
                raise RolloutFailed(f"{self.stack_name}_{short} was not restarted in time",
                                    hint=f"`docker service ps {self.stack_name}_{short}` says why")
            time.sleep(0.5)

    def prune_images(self, keep: Callable[[], set[str]]) -> list[str]:
        session = self.session
        return images.prune(session.target, session.settings, keep) if not session.target.dry else []

    # --- day two ---------------------------------------------------------------------------------------------

    def log_commands(self, services: Sequence[str], *, since: str | None, tail: int | None,
                     follow: bool) -> list[list[str]]:
        """``docker service logs`` of the app (or of each service named): every task, on whichever node."""
        names = list(services) or [self.session.settings.app_service]
        if follow and len(names) > 1:
            raise UsageError(f"--follow follows one service on engine: swarm, not {len(names)} "
                             f"({', '.join(names)})", hint=f"name one: --service {names[0]}")
        return [swarm_cmd.service_logs(f"{self.stack_name}_{name}", since=since, tail=tail, follow=follow)
                for name in names]

    def exec(self, command: Sequence[str], *, interactive: bool) -> int:
        """The one-off container (``one_off``) of the image the app service runs."""
        session, settings = self.session, self.session.settings
        app = read_stack(session.target, self.stack_name).service(settings.app_service)
        if app is None:
            raise NotDeployed(f"{self.stack_name}_{settings.app_service} is not deployed on {session.where}, so there is "
                              "no image to run the command in", hint=f"deploy first: {session.deploy_command()}")
        with self._one_off_argv(app, app.image, command, interactive=interactive) as argv:
            if interactive:
                return session.target.interact(argv)
            return session.target.run(argv, check=False, watched=True).exit_status

    def one_off(self, image: str, command: Sequence[str]) -> Result:
        """A ``docker run --rm`` on the manager of ``image`` set up as the app service's tasks are (before the
        stack's first deploy: as its stack file will set them up)."""
        settings = self.session.settings
        app = read_stack(self.session.target, self.stack_name).service(settings.app_service)
        if app is None:
            stack, _ = self.render(self.stack_plan(image, ""), self.compose)
            app = planned_app(stack, self.stack_name, settings.app_service, image)
        with self._one_off_argv(app, image, command, interactive=False) as argv:
            return self.session.target.run(argv, check=False, watched=True)

    @contextlib.contextmanager
    def _one_off_argv(self, app: Service, image: str, command: Sequence[str], *,
                      interactive: bool) -> Iterator[list[str]]:
        """The ``docker run --rm`` of ``image`` with the environment every task of ``app`` gets (through a private
        env file, removed afterwards), its named volumes (the manager's copies) and the stack's network when it is
        attachable."""
        session, target = self.session, self.session.target
        network = self._attachable_network(app)
        if network is None:
            session.ui.note(f"the command runs outside the stack's network: {self.stack_name}'s network "
                            + ("is created by its first deploy" if not app.network_ids else
                               "was created before the toolkit made it attachable (`docker stack rm` and deploy "
                               "again to change it)"))
        env_text, skipped = env_file_text(app.env)
        for key in skipped:
            session.ui.note(f"{key} is left out of the command's environment: its value spans lines")
        env_file = posixpath.join(session.state_dir, "swarm", state_files.exec_env_name(os.getpid(), time.time_ns()))
        target.run(files.mkdir_p(posixpath.dirname(env_file)))
        target.write_text(env_file, env_text, mode=0o600)
        try:
            yield swarm_cmd.one_off(image, command, env_file=env_file, network=network, volumes=app.volumes,
                                    interactive=interactive)
        finally:
            target.run(files.remove_file(env_file), check=False)

    def _attachable_network(self, service: Service) -> str | None:
        if not service.network_ids:
            return None
        found = self.session.target.probe(swarm_cmd.network_inspect(service.network_ids))
        names = parse_attachable(found.stdout) if found.ok else []
        return names[0] if names else None

    def lifecycle(self, action: str, services: Sequence[str], image: str | None) -> None:
        """``stop``: every service (or those named) scaled to 0, its replica count kept in a label, the stack,
        its networks, configs and volumes left in place; ``start``: the kept counts given back. Waits until the
        tasks are gone, or all running (for the app: past the revision gate)."""
        session, target = self.session, self.session.target
        state = read_stack(target, self.stack_name)
        names = [name for name in state.services if not services or name in services]
        changes = scaling(action, [state.services[name] for name in names], self.session.settings.replicas)
        for name, replicas, remember in changes:
            session.ui.note(f"{name}: {replicas} replica(s)" + (f" (was {remember})" if remember else ""))
            target.run(swarm_cmd.service_scale(name, replicas, remember=remember))
        if target.dry or not changes:
            return
        wait = STOP_WAIT if action == "stop" else max(session.settings.health_timeout, MIN_HEALTH_START) * 2
        self._settled(action, names, time.monotonic() + wait)

    def _settled(self, action: str, names: Sequence[str], deadline: float) -> None:
        """Wait until no task of ``names`` runs (stop), or each runs as many tasks as it asks for (start)."""
        while True:
            state = read_stack(self.session.target, self.stack_name)
            waiting = [name for name in names if not settled(action, state, name)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RolloutFailed(f"{', '.join(f'{self.stack_name}_{n}' for n in waiting)} did not {action} in time",
                                    hint=f"`docker service ps {self.stack_name}_{waiting[0]}` says why")
            time.sleep(0.5)
