"""The deploy pipeline, the same for every environment:

    lock ─▶ release (on a host: upload, unpack, prune old releases) ─▶ preflight ─▶ backup ─▶ build
         ─▶ verify.build ─▶ hooks.pre_switch (migrations, in the new image) ─▶ rollout (start beside, health,
         switch, drain) ─▶ prune old images ─▶ record ─▶ unlock ─▶ hooks.post_deploy (notifications)

Nothing running is touched before the rollout step, so a failed build, verify or pre_switch hook leaves the site
serving as it was.
Every outcome after preflight, success, failure or interruption (Ctrl-C, SIGTERM, SIGHUP), becomes a line of
release history. The lock comes first so that nothing on the host changes while another deploy runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from droplet_deploy.front import publish as front
from droplet_deploy.pipeline import service_images
from droplet_deploy.pipeline.backup_step import backup_hook
from droplet_deploy.pipeline.db_path_check import after_first_deploy
from droplet_deploy.session import Session
from droplet_deploy.steps.build import build_image
from droplet_deploy.steps.revision import Revision, current
from droplet_deploy.steps.verify import verify_image
from droplet_deploy.transaction import clean, history
from droplet_deploy.transaction import env_file as envfile
from droplet_deploy.transaction import release_files as kept
from droplet_deploy.transaction import retention as releases
from droplet_deploy.transaction.frame import Transaction
from droplet_deploy.transaction.hooks import pre_switch


@dataclass(frozen=True)
class Options:
    allow_dirty: bool = False
    no_cache: bool = False
    skip_backup: bool = False
    health_timeout: float | None = None


def verify_step(session: Session, image: str, revision: Revision) -> None:
    ui = session.ui
    if session.target.dry:
        ui.line(f"[dry-run] [{session.where}] verify {image}: revision label, no bytecode, app imports, "
                "non-root user, no .env inside")
        return
    verify_image(session.target, session.settings, image, revision.full,
                 report=lambda check: ui.check(check.ok, check.name, check.detail))


def deploy(session: Session, options: Options) -> None:
    ui, settings, backend = session.ui, session.settings, session.backend
    revision = current(session.local, allow_dirty=options.allow_dirty)
    image = settings.image(revision.tag)
    ui.line(f"deploying {revision.tag} to {settings.env} on {session.where}"
            + (" (dry run: printing commands, changing nothing)" if session.target.dry else ""))

    # The lock comes first: on a host, the upload and the pruning of old releases change the host too.
    with Transaction(session, "deploy", revision.full, image, skipped_backup=options.skip_backup) as txn:
        if backend.ships_release:
            with ui.step("release"):
                backend.prepare_release(revision)
        with ui.step("preflight", f"[{session.where}]"):
            session.backend.run_preflight(image)
            front.check(session)  # names another environment on the host routes: refused before anything changes
        with txn.recorded() as entry:
            _steps(session, options, revision, image, entry)
        txn.summary = f"{'planned' if session.target.dry else 'deployed'} {revision.tag} to {settings.env} on {session.where}"
        txn.timed = ["preflight", "backup", "build", "verify.build", "hooks.pre_switch", "rollout", "prune", "clean"]
        txn.suffix = f", revision proven by {entry['proof']}" if entry.get("proof") else ""


def prune(session: Session, image: str, release_id: str) -> None:
    """Images and kept release files past keep_images and keep_releases, sparing what a rollback to the release
    before this one needs (deploy.releases.needed)."""
    ui, settings = session.ui, session.settings

    def wanted() -> tuple[set[str], releases.Needed]:
        # The rollout retired every other app container: the newest running one serves, no upstream read needed.
        snapshot = session.backend.snapshot(upstream=False)
        serving = snapshot.serving.revision if snapshot.serving else None
        need = releases.needed(history.recent(session.target, session.state_dir, releases.HISTORY_LINES), serving)
        return {c.image for c in snapshot.apps} | {image} | need.images, need

    # What runs and what a rollback needs are read while the images are listed: neither waits for the other.
    with ThreadPoolExecutor(1, thread_name_prefix="prune") as pool:
        reading = pool.submit(wanted)
        pruned = session.backend.prune_images(lambda: reading.result()[0])
        need = reading.result()[1]
    ui.note(f"kept the newest {settings.keep_images} images" + (f", removed {len(pruned)}" if pruned else ""))
    removed = kept.prune(session, settings.keep_releases, need.releases | {release_id})
    if removed:
        ui.note(f"kept the files of the newest {settings.keep_releases} releases, removed {len(removed)}")


def _steps(session: Session, options: Options, revision: Revision, image: str, entry: dict) -> None:
    """Backup, build, verify.build, pre_switch hooks, rollout and prune: under the lock, recorded in the history."""
    ui, settings, target = session.ui, session.settings, session.target
    if options.skip_backup:
        ui.line("==> backup skipped (--skip-backup); the history records it")
    else:
        with ui.step("backup"):
            entry["backup"] = backup_hook(session, revision) or ""
    with ui.step("build", image), ui.live("building") as live:
        build_image(target, settings, revision, no_cache=options.no_cache, progress=live.feed)
    built = service_images.build_all(session, revision, no_cache=options.no_cache)
    # Compose reads the env file when it creates the new container: record which version that was.
    entry.update(envfile.fields(envfile.drift(target, settings, session.state_dir)))
    # The rollout's first read of what runs, and the new container's creation (not its start), go on beside
    # verify.build and the hooks: nothing of the new image runs before they passed.
    with session.backend.ahead(image):
        with ui.step("verify.build", image):
            verify_step(session, image, revision)
        service_images.verify_all(session, built, revision)
        if settings.hooks.pre_switch:
            with ui.step("hooks.pre_switch", image):
                pre_switch(session, image)
        # The release's compose file, override and env file are kept once it serves: a rollback brings all of
        # it back.
        with ui.step("rollout"), kept.keeping(session, revision, session.backend.in_use()) as keeping:
            # The old container drains beside the prune: nothing after the switch needs it gone first.
            result = session.backend.rollout(image, revision.full, timeout=options.health_timeout,
                                             drain_beside=True)
            entry["proof"] = result.proof
    after_first_deploy(session, image, entry.get("backup", ""))
    entry["release"] = keeping.id
    if front.applies(session) or front.was_routed(session):
        with ui.step("front", ", ".join(settings.hosts) or "no host names"):
            front.publish(session, revision.full)
    with ui.step("prune"):
        prune(session, image, keeping.id)
    clean.when_low(session)
    if result.previous is not None:
        ui.note(f"previous: {result.previous.name} at {(result.previous.revision or '?')[:12]}")
