"""Checks that run before anything changes. Each yields a line; any failure stops the deploy untouched."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from droplet_deploy.commands import docker
from droplet_deploy.core.errors import PreflightFailed
from droplet_deploy.transport.target import Target


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


def engine(target: Target) -> Item:
    result = target.probe(docker.server_version(), timeout=30)
    if not result.ok:
        return Item("docker engine", False, f"`docker version` failed on {target.name}: "
                    f"{(result.stderr.strip().splitlines() or ['no output'])[-1][:160]}")
    return Item("docker engine", True, f"server {result.stdout.strip()}")


Check = Callable[[], "Item | list[Item]"]


def in_order(*checks: Check) -> Callable[[], list[Item]]:
    """Checks that must run one after the other (one writes what the next reads), as one check of a stage."""
    def run_all() -> list[Item]:
        found: list[Item] = []
        for check in checks:
            item = check()
            found += item if isinstance(item, list) else [item]
        return found
    return run_all


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
