"""The deploy pipeline, the same for every environment:

    lock ─▶ release (on a host: upload, unpack, prune old releases) ─▶ preflight ─▶ backup ─▶ build
         ─▶ verify.build ─▶ rollout (start beside, health, switch, drain) ─▶ prune old images ─▶ record ─▶ unlock

Nothing running is touched before the rollout step, so a failed build or verify leaves the site as it was.
Every outcome after preflight, success, failure or interruption (Ctrl-C, SIGTERM, SIGHUP), becomes a line of
release history. The lock comes first so that nothing on the host changes while another deploy runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import history, images, preflight
from .adopt import release as adopt
from .build import build_image
from .revision import Revision, current
from .rollout import rollout
from .session import Session
from .verify import verify_image


@dataclass(frozen=True)
class Options:
    allow_dirty: bool = False
    no_cache: bool = False
    skip_backup: bool = False
    health_timeout: float | None = None


# Hooks filled by environment-specific modules (remote release upload, backups). Each takes the session and
# the revision; the default does nothing so local deploys build straight from the work tree.
Hook = Callable[[Session, Revision], None]


def run_preflight(session: Session, image: str, extra: list | None = None) -> None:
    stack = session.stack
    checks = [
        lambda: preflight.engine(stack),
        lambda: preflight.compose(stack),
        # Writes this release's compose override (or removes a stale one): the checks below see the stack with it.
        lambda: adopt.prepare(session, image),
        lambda: preflight.compose_file(session.stack, image),
        # Only checkable from here for a local stack; a host's port is its own business.
        *([] if session.settings.is_remote else [lambda: preflight.public_port(stack)]),
        *(extra or []),
    ]
    preflight.run(checks, lambda item: session.ui.check(item.ok, item.name, item.detail))


def verify_step(session: Session, image: str, revision: Revision) -> None:
    ui = session.ui
    if session.target.dry:
        ui.line(f"[dry-run] [{session.where}] verify {image}: revision label, no bytecode, app imports, "
                "non-root user, no .env inside")
        return
    verify_image(session.target, session.settings, image, revision.full,
                 report=lambda check: ui.check(check.ok, check.name, check.detail))


def deploy(session: Session, options: Options, *, prepare: Hook | None = None, backup: Hook | None = None,
           preflight_extra: Callable[[Session], list] | None = None) -> history.Record:
    ui, settings, target = session.ui, session.settings, session.target
    started_wall, started = time.time(), time.monotonic()
    revision = current(session.local, allow_dirty=options.allow_dirty)
    image = settings.image(revision.tag)
    ui.line(f"deploying {revision.tag} to {settings.env} on {session.where}"
            + (" (dry run: printing commands, changing nothing)" if target.dry else ""))

    deployed = False
    try:
        # The lock comes first: on a host, the upload and the pruning of old releases change the host too.
        with session.locked(revision.full) as holder:
            if prepare:
                with ui.step("release"):
                    prepare(session, revision)
            with ui.step("preflight", f"[{session.where}]"):
                run_preflight(session, image, preflight_extra(session) if preflight_extra else None)
            with history.recorded(target, session.state_dir, revision=revision.full, image=image, env=settings.env,
                                  who=holder.holder, skipped_backup=options.skip_backup) as entry:
                _steps(session, options, revision, image, entry, backup)
            deployed = True
    finally:
        elapsed = time.monotonic() - started
        if deployed:
            verb = "planned" if target.dry else "deployed"
            ui.line(f"{verb} {revision.tag} to {settings.env} on {session.where} in {elapsed:.1f}s "
                    f"({ui.breakdown(['preflight', 'backup', 'build', 'verify.build', 'rollout'])})")
    return history.Record(revision.full, image, settings.env, holder.holder, started_wall, round(elapsed, 2), "ok")


def _steps(session: Session, options: Options, revision: Revision, image: str, entry: dict,
           backup: Hook | None) -> None:
    """Backup, build, verify.build, rollout and prune: under the lock, and recorded in the history."""
    ui, settings, target = session.ui, session.settings, session.target
    if backup and not options.skip_backup:
        with ui.step("backup"):
            entry["backup"] = backup(session, revision) or ""
    elif options.skip_backup:
        ui.line("==> backup skipped (--skip-backup); the history records it")
    with ui.step("build", image):
        build_image(target, settings, revision, no_cache=options.no_cache)
    with ui.step("verify.build", image):
        verify_step(session, image, revision)
    with ui.step("rollout"):
        result = rollout(session.stack, image, revision.full, say=ui.note,
                         health_timeout=options.health_timeout)
    with ui.step("prune"):
        in_use = {c.image for c in session.stack.apps()} | {image}
        pruned = images.prune(target, settings, in_use) if not target.dry else []
        ui.note(f"kept the newest {settings.keep_images} images"
                + (f", removed {len(pruned)}" if pruned else ""))
    if result.previous is not None:
        ui.note(f"previous: {result.previous.name} at {(result.previous.revision or '?')[:12]}")
