"""One environment's compose stack on one target: its compose command, containers and proxy upstream."""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from droplet_deploy.commands import compose as compose_cmd
from droplet_deploy.commands import docker
from droplet_deploy.commands import proxy as proxy_cmd
from droplet_deploy.commands.compose import Compose
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import PreflightFailed
from droplet_deploy.engines.compose import state
from droplet_deploy.engines.compose.compose_file import ReleaseServices
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.transaction.release_files import InUse, Kept
from droplet_deploy.transport.target import Target

# What APP_ENV_FILE names when no env_file is configured: an env file that exists everywhere and sets nothing.
NO_ENV_FILE = "/dev/null"


# The binaries each ``compose_command`` setting tries, in order: the v2 plugin first, v1 where users still have it.
COMPOSE_BINARIES: dict[str, list[tuple[str, ...]]] = {
    "auto": [("docker", "compose"), ("docker-compose",)],
    "docker compose": [("docker", "compose")],
    "docker-compose": [("docker-compose",)],
}


def detect_compose(target: Target, preference: str = "auto") -> tuple[tuple[str, ...], str]:
    """The compose binary on the target and what its ``version --short`` says."""
    candidates = COMPOSE_BINARIES[preference]
    for binary in candidates:
        found = target.probe(compose_cmd.version(binary))
        if found.ok:
            return binary, found.stdout.strip()
    raise PreflightFailed(
        f"[{target.name}] no docker compose found (tried {', '.join(' '.join(b) for b in candidates)})",
        hint="install the Compose v2 plugin (see docs/DEPLOYMENT-RUNBOOK.md) or set deploy.compose_command",
    )


def compose_variables(settings: Settings, image: str | None = None, *, env_file: str | None = None) -> dict[str, str]:
    """What the compose file's ${...} interpolation gets.

    APP_ENV_FILE: the compose file names the env file by this absolute path (``env_file: ${APP_ENV_FILE:-.env}``),
    so secrets never sit in the release directory, which is the build context. ``env_file`` replaces the configured
    one: a rollback passes the copy kept with the release it returns to.
    """
    variables = {"PROXY_IMAGE": settings.proxy_image, "PUBLIC_PORT": str(settings.public_port),
                 "APP_ENV_FILE": env_file or settings.env_file_path or NO_ENV_FILE}
    if image:
        variables["APP_IMAGE"] = image
    return variables


@dataclass(frozen=True)
class Switched:
    """Where a switch pointed the proxy: ``upstream``, what its file names now; ``workers_before``, the nginx
    workers of the configuration before, still finishing their requests (empty once they have exited)."""

    upstream: str | None
    proxy: str
    workers_before: tuple[int, ...] = ()


class Stack:
    """Compose on one target for one environment: the command line, the state snapshot and the changes a
    rollout makes (start, switch the proxy, retire containers)."""

    def __init__(self, target: Target, settings: Settings, *, overrides: Sequence[str] = ()):
        self.target = target
        self.settings = settings
        self.compose_file = settings.compose_file
        # Merged over compose_file: the toolkit's per-release override (deploy/adopt), set when a deploy writes it.
        self.overrides = tuple(overrides)
        # A rollback's stack (``returning_to``) runs the kept compose file: its relative paths still resolve where
        # the original's did.
        self.project_directory: str | None = None
        self.env_file: str | None = None  # None: the configured env file
        # The services besides the app the release updates, once its compose file was read (override_file.prepare).
        self.services: ReleaseServices | None = None
        self._detected: tuple[tuple[str, ...], str] | None = None
        self._detecting = threading.Lock()  # preflight's checks run at once, and several need the binary
        self._ahead: Future[state.Snapshot] | None = None  # read_ahead's read, until a snapshot takes it
        # The new app container read_ahead created (not started) once verify.build passes, until a start takes it.
        self._created: Future[Container | None] | None = None

    @property
    def binary(self) -> tuple[str, ...]:
        """Detected once per task: every compose command of a deploy uses the same binary."""
        return self._detect()[0]

    @property
    def compose_version(self) -> str:
        """What the binary's ``version --short`` said when it was detected ("" if nothing)."""
        return self._detect()[1]

    def _detect(self) -> tuple[tuple[str, ...], str]:
        with self._detecting:
            if self._detected is None:
                self._detected = detect_compose(self.target, self.settings.compose_command)
            return self._detected

    def returning_to(self, kept: Kept | None, directory: str) -> Stack:
        """This stack run with the files a release ran with (``kept``), compose resolving the compose file's
        relative paths in ``directory``, where the original was; without kept files, the compose file in
        ``directory`` as it is now (the override is then written for the release again)."""
        back = Stack(self.target, self.settings, overrides=self.overrides)
        back._detected = self._detected
        here = directory == self.target.cwd
        original = self.settings.compose_file if here else posixpath.join(directory, self.settings.compose_file)
        if kept is None:
            back.compose_file = original
            return back
        back.project_directory = posixpath.dirname(posixpath.join(directory, self.settings.compose_file)) or "."
        back.compose_file = kept.compose_file
        back.overrides = (kept.override_file,) if kept.override_file else ()
        back.env_file = kept.env_file or NO_ENV_FILE
        return back

    def about(self, settings: Settings) -> Stack:
        """The same compose files and directory, read with other settings (the frontend's rollout: frontend.py)."""
        other = Stack(self.target, settings, overrides=self.overrides)
        other.compose_file, other.project_directory, other.env_file = \
            self.compose_file, self.project_directory, self.env_file
        other._detected = self._detected
        return other

    def in_use(self) -> InUse:
        """The files this stack runs with, as a release keeps them."""
        env = self.env_file or self.settings.env_file_path
        return InUse(self.compose_file, self.overrides[0] if self.overrides else None,
                     env if env and env != NO_ENV_FILE else None)

    @property
    def first_binary(self) -> tuple[str, ...]:
        """The detected binary, or while detection runs the one it tries first (nearly always the one found): a
        check that only reads runs with it beside the detection, and again if another was found."""
        detected = self._detected
        return detected[0] if detected else COMPOSE_BINARIES[self.settings.compose_command][0]

    def compose(self, image: str | None = None, *, binary: tuple[str, ...] | None = None) -> Compose:
        variables = compose_variables(self.settings, image, env_file=self.env_file)
        return Compose(self.settings.project, self.compose_file, binary or self.binary, variables, self.overrides,
                       self.project_directory)

    def snapshot(self, *, upstream: bool = True) -> state.Snapshot:
        """What runs now; ``upstream=False`` leaves out the read of the proxy's upstream file, for a caller that
        only looks for containers. The first full read after ``read_ahead`` is the one it started."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and upstream:
            try:
                return ahead.result()
            except Exception:  # whatever went wrong there, a read of its own says it properly
                pass
        return state.read(self.target, self.settings, upstream=upstream)

    # -- reading ahead -------------------------------------------------------------------------------------
    def read_ahead(self, image: str | None = None) -> None:
        """Start the rollout's first read of what runs (containers, the proxy's upstream) beside the caller's
        next step (verify.build): it changes nothing, and under the deploy lock nothing else starts or stops the
        stack's containers meanwhile. Given the ``image``, the new app container is then created beside it too,
        not started (``started_ahead`` starts it once verify.build passed; ``drop_ahead`` removes it otherwise):
        creating runs nothing of the image, and a start alone is the shorter step. Only on this machine, where
        commands run side by side; over SSH they share one shell."""
        if self.target.dry or self.settings.is_remote or self._ahead is not None:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._ahead = pool.submit(state.read, self.target, self.settings)
        if image is not None:
            self._created = pool.submit(self._create_beside, self._ahead, image)
        pool.shutdown(wait=False)

    def _create_beside(self, read: Future[state.Snapshot], image: str) -> Container | None:
        """The plain case only: app containers and the proxy running, nothing left over by an interrupted deploy
        (the rollout clears that first: ``--scale`` would count a stopped container)."""
        before = read.result()
        if not before.apps or before.proxy is None or before.stopped_apps or before.orphans():
            return None
        app = self.settings.app_service
        self.target.run(self.compose(image).create([app], scale={app: len(before.apps) + 1}))
        known = {c.id for c in before.containers}
        made = [c for c in state.read(self.target, self.settings, upstream=False).of(app) if c.id not in known]
        return made[0] if len(made) == 1 and not made[0].running else None

    def started_ahead(self) -> bool:
        """Start the container ``read_ahead`` created, if it did; False when there is none to start."""
        created, self._created = self._created, None
        container = _done(created)
        if container is None:
            return False
        # A failed start leaves the compose start to say why in its own words (it starts this one, or a new one).
        return self.target.run(docker.start([container.id]), check=False).ok

    def drop_ahead(self) -> Container | None:
        """Remove the container ``read_ahead`` created when nothing started it (verify.build or a hook failed, or
        the deploy was interrupted before the rollout); the one removed, if any."""
        created, self._created = self._created, None
        container = _done(created)
        if container is not None:
            self.remove([container])
        return container

    # -- changes -----------------------------------------------------------------------------------------
    def switch(self, proxy: Container, container: Container, *, settle: bool = True) -> Switched:
        """Point the proxy at ``container``. ``settle``: return once nginx's workers of the configuration before
        have exited; otherwise as soon as the new one serves, and ``retire(after=...)`` waits for them."""
        result = self.target.run(proxy_cmd.switch(proxy.id, self.settings.upstream_file, container.name,
                                                  self.settings.app_port, settle=settle))
        return Switched(state.parse_upstream(result.stdout), proxy.id,
                        () if settle else state.parse_workers_before(result.stdout))

    def reset_upstream(self, compose: Compose) -> None:
        """Rewrite the upstream through a one-off proxy container, for when no proxy runs to exec into."""
        settings = self.settings
        self.target.run(compose.run(settings.proxy_service,
                                    proxy_cmd.reset_script(settings.upstream_file, settings.app_service,
                                                           settings.app_port)))

    def retire(self, containers: Sequence[Container], *, drain: int, after: Switched | None = None) -> None:
        """Graceful stop (SIGTERM, then ``drain`` seconds to finish in-flight requests), then remove. ``after``:
        the switch that took their traffic, whose old nginx workers may still send them requests until they exit."""
        if not containers:
            return
        if after is not None and after.workers_before:
            # Bounded in the script; a proxy that went away meanwhile has no workers left to wait for.
            self.target.probe(proxy_cmd.wait_workers(after.proxy, after.workers_before), timeout=40)
        ids = [c.id for c in containers]
        self.target.run(docker.stop(ids, timeout=drain))
        self.target.run(docker.remove(ids, force=True))

    def remove(self, containers: Sequence[Container]) -> None:
        """At once, for containers that take no traffic (stopped leftovers, a new one that never proved itself)."""
        if containers:
            self.target.run(docker.remove([c.id for c in containers], force=True))


def _done(created: Future[Container | None] | None) -> Container | None:
    """What a create ahead made, once it ended; None when it made nothing or failed (the rollout then starts the
    container itself, and the failure's leftover, if any, is a stopped container it clears)."""
    if created is None:
        return None
    try:
        return created.result()
    except Exception:  # noqa: BLE001 - the rollout's own start says what is wrong, in its words
        return None
