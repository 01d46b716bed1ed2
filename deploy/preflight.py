"""Checks that run before anything changes. Each yields a line; any failure stops the deploy untouched."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .commands import docker, files
from .config import Settings
from .errors import DeployError, PreflightFailed
from .stack import Stack
from .state import Snapshot


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    detail: str


def parse_df_free_mb(stdout: str) -> int | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    try:
        return int(fields[3]) // 1024
    except (IndexError, ValueError):
        return None


def engine(stack: Stack) -> Item:
    result = stack.target.probe(docker.server_version(), timeout=30)
    if not result.ok:
        return Item("docker engine", False, f"`docker version` failed on {stack.target.name}: "
                    f"{(result.stderr.strip().splitlines() or ['no output'])[-1][:160]}")
    return Item("docker engine", True, f"server {result.stdout.strip()}")


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
    compose = stack.compose(image)
    if stack.target.dry:
        # A dry run prints the override instead of writing it: check what is there.
        compose = dataclasses.replace(compose, overrides=tuple(
            f for f in compose.overrides if stack.target.probe(files.is_file(f)).ok))
    result = stack.target.probe(compose.config(quiet=True))
    names = " + ".join([stack.compose_file, *compose.overrides])
    if not result.ok:
        tail = (result.stderr.strip().splitlines() or ["invalid"])[-1][:200]
        return Item("compose file", False, f"{names}: {tail}")
    return Item("compose file", True, f"{names} is valid")


def public_port(settings: Settings, snapshot: Snapshot) -> Item:
    """The stack's own proxy may hold the port; anything else there would make the first start fail halfway."""
    port = settings.public_port
    if snapshot.proxy is not None:
        return Item("public port", True, f"{port} served by the stack's proxy")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        taken = sock.connect_ex(("127.0.0.1", port)) == 0
    if taken:
        return Item("public port", False, f"{port} is already in use by another process; stop it or set "
                    f"deploy.environments.{settings.env}.public_port")
    return Item("public port", True, f"{port} is free")


def in_order(*checks: Callable[[], Item]) -> Callable[[], list[Item]]:
    """Checks that must run one after the other (one writes what the next reads), as one check of a stage."""
    return lambda: [check() for check in checks]


Check = Callable[[], "Item | list[Item]"]


def run(stages: list[list[Check]], report: Callable[[Item], None]) -> list[Item]:
    """Run the stages in order and the checks of a stage at once (each is its own command, and none changes
    anything running); report the items in the order given and raise on the first failure. A failed stage ends
    the run: the next one needs it (nothing is worth checking without an engine)."""
    done: list[Item] = []
    for stage in stages:
        with ThreadPoolExecutor(max_workers=max(1, len(stage)), thread_name_prefix="preflight") as pool:
            for future in [pool.submit(check) for check in stage]:
                found = future.result()
                for item in found if isinstance(found, list) else [found]:
                    report(item)
                    done.append(item)
        if any(not item.ok for item in done):
            break
    failed = [i for i in done if not i.ok]
    if failed:
        first = failed[0]
        raise PreflightFailed(f"preflight: {first.name}: {first.detail}",
                              hint="nothing was changed" + (f"; {len(failed) - 1} more check(s) failed" if len(failed) > 1 else ""))
    return done
