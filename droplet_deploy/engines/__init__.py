"""Where and how an environment runs, chosen once per task from its settings.

    ComposeBackend      compose on this machine: builds from the work tree, checks the local public port
    SshComposeBackend   compose on a host over one SSH connection: ships a release directory, checks the host's
                        disk and env file, backs up before each deploy by default
    SwarmBackend        a Swarm cluster through its manager (``engine: swarm``), here or over SSH: the image sent
                        to every node, a gated start-first rollout proven on every task, stack-wide rollback

Everything that differs between them lives in their class; the pipeline, rollback, restore and the day-two tasks
only call the ``Backend`` interface.
"""

from __future__ import annotations

from invoke import Context

from droplet_deploy.core.config import Settings
from droplet_deploy.engines.base import Backend
from droplet_deploy.engines.compose.backend import ComposeBackend
from droplet_deploy.session import Session, load_settings
from droplet_deploy.transport.target import Bounds, LocalTarget

__all__ = ["Backend", "ComposeBackend", "open_session"]


def open_session(c: Context, env: str | None = None, host: str | None = None, *,
                 accept_new_host_key: bool = False, verbose: bool = False) -> Session:
    """Settings, targets and the backend for one task; the only place a backend is chosen. ``verbose``: echo
    every command and show streamed output (the build log); otherwise only a failing command is shown."""
    settings = load_settings(c, env, host, accept_new_host_key=accept_new_host_key)
    local = LocalTarget(c, str(settings.root), echo=verbose)
    session = _backend_for(settings).open(c, settings, local)
    session.target.echo = verbose
    bounds = Bounds(settings.command_timeout, settings.build_timeout, settings.pre_switch_timeout)
    local.bounds = session.target.bounds = bounds
    return session


def _backend_for(settings: Settings) -> type[Backend]:
    # Imported here: the SSH backends bring in fabric, paramiko and cryptography, about a tenth of a second that
    # a local deploy and `inv --list` need not pay.
    if settings.engine == "swarm":
        from droplet_deploy.engines.swarm.backend import SwarmBackend
        return SwarmBackend
    if settings.is_remote:
        from droplet_deploy.engines.compose.ssh import SshComposeBackend
        return SshComposeBackend
    return ComposeBackend
