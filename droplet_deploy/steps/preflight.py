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
    """Every check at once (each is its own command, and none changes anything running), reported stage by stage
    in the order given; raise on the first failure. A failed stage ends the run and nothing of a later stage is
    reported: those need it (nothing is worth checking without an engine), so their answers would only repeat it.
    The later stages start beside the first instead of after it: a check costs its command's start-up, and the
    stages of a passing preflight, the usual case, then take as long as their slowest check, not their sum."""
    done: list[Item] = []
    pool = ThreadPoolExecutor(max_workers=max(1, sum(len(stage) for stage in stages)), thread_name_prefix="preflight")
    try:
        running = [[pool.submit(check) for check in stage] for stage in stages]
        for stage in running:
            for future in stage:
                found = future.result()
                for item in found if isinstance(found, list) else [found]:
                    report(item)
                    done.append(item)
            if any(not item.ok for item in done):
                break
    finally:
        # A failed stage does not wait for the later ones' answers (they only read, and end within their bounds).
        pool.shutdown(wait=False, cancel_futures=True)
    failed = [i for i in done if not i.ok]
    if failed:
        first = failed[0]
        raise PreflightFailed(f"preflight: {first.name}: {first.detail}",
                              hint="nothing was changed" + (f"; {len(failed) - 1} more check(s) failed" if len(failed) > 1 else ""))
    return done
