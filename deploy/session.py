"""Everything one task invocation works with: settings, the local work tree, the target and the reporter."""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass, field

from invoke import Context

from . import config as config_mod
from . import lock
from .adopt.release import existing_overrides
from .config import Settings
from .stack import Stack
from .target import LocalTarget, Target
from .ui import Reporter


@dataclass
class Session:
    settings: Settings
    local: LocalTarget
    target: Target
    ui: Reporter = field(default_factory=Reporter)
    # Compose files merged over the user's: set when a deploy writes this release's override; None: not known
    # yet, read from the state directory on first use.
    compose_overrides: tuple[str, ...] | None = None

    @property
    def state_dir(self) -> str:
        return state_dir(self.settings)

    @property
    def stack(self) -> Stack:
        if self.compose_overrides is None:
            self.compose_overrides = existing_overrides(self.target, self.state_dir)
        return Stack(self.target, self.settings, overrides=self.compose_overrides)

    @property
    def where(self) -> str:
        return self.target.name

    def unlock_hint(self) -> str:
        host = f" --host {self.settings.host}" if self.settings.is_remote else ""
        env = f" --env {self.settings.env}" if self.settings.env not in ("test", "prod") else ""
        task = "deploy.unlock"
        return f"inv {task}{host}{env}"

    def locked(self, revision: str) -> contextlib.AbstractContextManager[lock.Holder]:
        """The deploy lock for a block, naming us as deploying ``revision``; an abandoned one is taken over."""
        return lock.held(self.target, self.state_dir, lock.me(revision), self.unlock_hint(),
                         stale_after=self.settings.lock_stale_seconds, say=self.ui.note)

    def close(self) -> None:
        self.target.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def remote_dir(settings: Settings) -> str:
    return settings.host_dir


def state_dir(settings: Settings) -> str:
    if settings.state_dir:
        base = remote_dir(settings) if settings.is_remote else str(settings.root)
        return posixpath.join(base, settings.state_dir)
    if settings.is_remote:
        return posixpath.join(remote_dir(settings), "state")
    return str(settings.root / ".deploy" / settings.env)


def project_root(c: Context):
    from pathlib import Path

    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix).resolve() if prefix else Path.cwd()


def load_settings(c: Context, env: str | None = None, host: str | None = None) -> Settings:
    if env is None and host:
        env = "prod"  # a host given without an environment means production
    raw = c.config.get("deploy", {})
    return config_mod.load(raw, env, root=project_root(c), host=host)


def open_session(c: Context, env: str | None = None, host: str | None = None, *,
                 accept_new_host_key: bool = False) -> Session:
    settings = load_settings(c, env, host)
    if accept_new_host_key:
        import dataclasses

        settings = dataclasses.replace(settings, accept_new_host_key=True)  # the flag wins over the config
    local = LocalTarget(c, str(settings.root))
    if settings.is_remote:
        from .remote import connect

        target: Target = connect(c, settings)
    else:
        target = local
    return Session(settings, local, target)
