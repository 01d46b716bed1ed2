"""Preflight checks of a compose stack: the compose binary, the compose file as compose reads it (with the
toolkit's override), the public port on this machine, and what runs today under another project name."""

from __future__ import annotations

import dataclasses
import posixpath
import socket

from droplet_deploy.commands import files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import DeployError
from droplet_deploy.engines.compose import compose_file as compose_file_module
from droplet_deploy.engines.compose import override_file, takeover
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Snapshot
from droplet_deploy.steps.preflight import Item
from droplet_deploy.transport.target import Target


def compose(stack: Stack) -> Item:
    try:
        binary = stack.binary
    except DeployError as exc:
        return Item("docker compose", False, str(exc))
    return Item("docker compose", True, f"{' '.join(binary)} {stack.compose_version}")


def compose_file(stack: Stack, image: str) -> Item:
    if stack.target.dry and not stack.target.probe(files.is_file(stack.compose_file)).ok:
        # A dry run before the first release: the files were not uploaded, so there is nothing to check yet.
        return Item("compose file", True, f"{stack.compose_file} not on {stack.target.name} yet (dry run before "
                                          "the first release): checked when a real deploy uploads it")
    # Run beside the binary's detection (its `version` takes as long as this check), not after it.
    compose = stack.compose(image, binary=stack.first_binary)
    if stack.target.dry:
        # A dry run prints the override instead of writing it: check what is there.
        compose = dataclasses.replace(compose, overrides=tuple(
            f for f in compose.overrides if stack.target.probe(files.is_file(f)).ok))
    result = stack.target.probe(compose.config(quiet=True))
    if stack.binary != compose.binary:
        result = stack.target.probe(dataclasses.replace(compose, binary=stack.binary).config(quiet=True))
    names = " + ".join([stack.compose_file, *compose.overrides])
    if not result.ok:
        tail = (result.stderr.strip().splitlines() or ["invalid"])[-1][:200]
        return Item("compose file", False, f"{names}: {tail}")
    return Item("compose file", True, f"{names} is valid")


def public_port(settings: Settings, snapshot: Snapshot, target: Target) -> Item:
    """The stack's own proxy may hold the port, or its own app container (a stack to take over); anything else
    there would make the first start fail halfway."""
    port = settings.public_port
    if snapshot.proxy is not None:
        return Item("public port", True, f"{port} served by the stack's proxy")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        taken = sock.connect_ex(("127.0.0.1", port)) == 0
    held = takeover.port_item(settings, takeover.holders(target, port)) if taken else None
    if held is not None:
        return held
    if taken:
        return Item("public port", False, f"{port} is already in use by another process; stop it or set "
                    f"deploy.environments.{settings.env}.public_port")
    return Item("public port", True, f"{port} is free")


def takeover_items(stack: Stack, *, local: bool) -> list[Item]:
    """The compose project that runs this file today (``takeover.check``); nothing when the file cannot be read
    (the compose shape check says why)."""
    target, settings = stack.target, stack.settings
    try:
        doc = compose_file_module.load(override_file.read_compose(target, settings, stack.compose_file),
                                       settings.compose_file)
    except DeployError:
        return []
    path = posixpath.join(target.cwd, stack.compose_file)
    return takeover.check(target, settings, doc, path, local=local)
