"""Everything one task invocation works with: settings, the local work tree, the target, the reporter and the
engine that knows how this environment runs. Opened by ``droplet_deploy.engines.open_session``, passed down to
every step."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context

from droplet_deploy.core import config as config_mod
from droplet_deploy.core.config import Settings
from droplet_deploy.core.ui import Reporter
from droplet_deploy.transport.target import LocalTarget, Target

if TYPE_CHECKING:  # the engine holds a session; the session only names its type
    from droplet_deploy.engines.base import Backend


@dataclass
class Session:
    settings: Settings
    local: LocalTarget
    target: Target
    ui: Reporter = field(default_factory=Reporter)
    _backend: Backend | None = field(default=None, repr=False)
    _deferred: list[threading.Thread] = field(default_factory=list, repr=False)
    _deferred_errors: list[BaseException] = field(default_factory=list, repr=False)

    @property
    def backend(self) -> Backend:
        """The engine this environment runs on; set once, by the engine's ``open``."""
        if self._backend is None:
            raise RuntimeError("the session was opened without an engine (open it with engines.open_session)")
        return self._backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def state_dir(self) -> str:
        return self.settings.state_path

    @property
    def where(self) -> str:
        return self.target.name

    def command(self, task: str) -> str:
        """How to run ``task`` against this environment: ``inv deploy.start --host prod``."""
        host = f" --host {self.settings.host}" if self.settings.is_remote else ""
        env = f" --env {self.settings.env}" if self.settings.env not in ("test", "prod") else ""
        return f"inv {task}{host}{env}"

    def deploy_command(self) -> str:
        """How to deploy this environment: ``inv deploy.prod``, ``inv deploy.env --env staging --host ...``."""
        task = {"test": "deploy.test", "prod": "deploy.prod"}.get(self.settings.env, "deploy.env")
        return self.command(task)

    def unlock_hint(self) -> str:
        return self.command("deploy.unlock")

    def defer(self, work: Callable[[], None], name: str) -> None:
        """Run ``work`` beside the steps that follow (the old release's drain beside the prune); ``settle`` waits
        for it, and the transaction settles before it releases the lock, so no command ends with it unfinished."""
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # raised in the task's own thread by settle, never printed as a traceback
                self._deferred_errors.append(exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._deferred.append(thread)
        thread.start()

    def settle(self) -> None:
        """Wait for the work ``defer`` started; the first error it raised is raised here."""
        while self._deferred:
            self._deferred.pop(0).join()
        if self._deferred_errors:
            error, self._deferred_errors[:] = self._deferred_errors[0], []
            raise error

    def close(self) -> None:
        self.target.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def project_root(c: Context) -> Path:
    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix).resolve() if prefix else Path.cwd()


def load_settings(c: Context, env: str | None = None, host: str | None = None, *,
                  accept_new_host_key: bool = False) -> Settings:
    if env is None and host:
        env = "prod"  # a host given without an environment means production
    raw = c.config.get("deploy", {})
    settings = config_mod.load(raw, env, root=project_root(c), host=host)
    if accept_new_host_key:
        settings = settings.replace(accept_new_host_key=True)  # the flag, never a config file, turns it on
    return settings
