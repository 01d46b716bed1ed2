"""``deploy.clean``: remove what the toolkit made for this app and nothing needs, and say how many bytes that frees.

    images    this app's (and its services' own) beyond ``keep_images`` that no container runs and no rollback
              needs (``retention.needed``), the same choice as the prune after a deploy
    dangling  untagged images the toolkit built for this app (its ``droplet-deploy.app`` label)
    stopped   this compose project's stopped containers

Never another project's images or containers (everything is chosen by this app's name or project label), never a
volume unless one is named (``volume``), is this project's, no running container mounts it, and the person at the
terminal confirmed it by typing its name (or passed ``--yes``). ``dry`` lists the same and removes nothing.

A deploy runs the same step after its prune when the disk where Docker keeps images has less than
``clean_below_mb`` free; preflight warns of it first (``disk_item``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from droplet_deploy.commands import docker, files
from droplet_deploy.core.errors import UsageError
from droplet_deploy.session import Session
from droplet_deploy.steps import images
from droplet_deploy.steps.build import service_repository
from droplet_deploy.steps.preflight import Item, parse_df_free_mb
from droplet_deploy.transaction import lock, retention


@dataclass(frozen=True)
class Doomed:
    what: str  # "image", "dangling image", "stopped container"
    ref: str
    size: int  # bytes; 0 where unknown (a container's own layer)


def plan(session: Session) -> list[Doomed]:
    target, settings = session.target, session.settings
    snapshot = session.backend.snapshot(upstream=False)
    in_use = {c.image for c in snapshot.containers} | set(retention.needed_now(session).images)
    app = images.choose_prunable(images.kept_images(target, settings), settings.keep_images, in_use)
    kept_tags = {i.tag for i in images.kept_images(target, settings) if i not in app}
    found = [i.ref for i in app]
    for service in (b.service for b in session.backend.built_services()):
        repository = service_repository(settings, service)
        listed = target.probe(docker.images(repository), check=True).stdout
        found += [i.ref for i in images.parse_images(listed, repository) if i.tag not in kept_tags
                  and i.ref not in in_use]
    dangling = target.probe(docker.dangling_images(settings.app_name), check=True).stdout.split()
    sizes = _sizes(session, [*found, *dangling])
    return [*(Doomed("image", ref, sizes.get(ref, 0)) for ref in found),
            *(Doomed("dangling image", ref[:19], sizes.get(ref, 0)) for ref in dangling),
            *(Doomed("stopped container", c.name, 0) for c in snapshot.containers if not c.running)]


def _sizes(session: Session, refs: list[str]) -> dict[str, int]:
    if not refs:
        return {}
    result = session.target.probe(docker.image_sizes(refs))
    sizes = result.stdout.split()
    return {ref: int(size) for ref, size in zip(refs, sizes, strict=False) if size.isdigit()}


def clean(session: Session, *, dry: bool) -> int:
    """Remove (or with ``dry`` list) what ``plan`` finds; the bytes freed (or that would be)."""
    ui, target = session.ui, session.target
    doomed = plan(session)
    total = sum(d.size for d in doomed)
    for d in doomed:
        ui.note(f"{'would remove' if dry else 'removing'} {d.what} {d.ref}" + (f" ({mb(d.size)})" if d.size else ""))
    if not dry and doomed:
        removing = [d.ref for d in doomed if d.what != "stopped container"]
        if removing:
            target.run(docker.remove_images(removing), check=False)
        containers = [c.id for c in session.backend.snapshot(upstream=False).containers if not c.running]
        if containers:
            target.run(docker.remove(containers, force=True), check=False)
    verb = "would free" if dry else "freed"
    ui.line(f"deploy.clean: {len(doomed)} item(s), {verb} {mb(total)} ({total} bytes; images' sizes, a layer "
            "shared with a kept image stays)" if doomed else "deploy.clean: nothing to remove")
    return total


def mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# Docker's default data root: where images and build layers land.
DOCKER_ROOT = "/var/lib/docker"


def free_mb(session: Session) -> int | None:
    """Free MB where Docker keeps images on the target (the nearest existing parent of its data root)."""
    return parse_df_free_mb(session.target.probe(files.free_kib_nearest(DOCKER_ROOT)).stdout)


def low(settings_below: int, free: int | None) -> bool:
    return settings_below > 0 and free is not None and free < settings_below


def disk_item(session: Session) -> Item:
    """Preflight's look at the disk for images: never a failure (min_free_mb is that), a warning in words."""
    below, free = session.settings.clean_below_mb, free_mb(session)
    if free is None:
        return Item("image disk", True, f"free space of {DOCKER_ROOT} unknown on {session.where}")
    if low(below, free):
        return Item("image disk", True, f"warning: {free} MB free at {DOCKER_ROOT}, under clean_below_mb "
                                        f"({below} MB): this deploy ends with deploy.clean")
    return Item("image disk", True, f"{free} MB free at {DOCKER_ROOT}")


def when_low(session: Session) -> None:
    """The deploy's clean step, when the disk for images is under ``clean_below_mb``."""
    below = session.settings.clean_below_mb
    free = free_mb(session) if below > 0 and not session.target.dry else None
    if low(below, free):
        with session.ui.step("clean", f"{free} MB free at {DOCKER_ROOT}, under clean_below_mb ({below} MB)"):
            clean(session, dry=False)


def chosen_volume(session: Session, name: str) -> str:
    """The docker volume ``name`` (as the compose file names it) of this project, when nothing running mounts it;
    else one line saying why not."""
    project, target = session.settings.project, session.target
    ours = target.probe(docker.project_volumes(project), check=True).stdout.split()
    full = f"{project}_{name}"
    if full not in ours:
        shown = ", ".join(v.removeprefix(f"{project}_") for v in ours) or "none"
        raise UsageError(f"--volume {name!r} is not a volume of {project} (its volumes: {shown})",
                         hint="name one of them as the compose file does")
    users = target.probe(docker.volume_users(full), check=True).stdout.split()
    if users:
        raise UsageError(f"--volume {name!r}: {full} is mounted by {', '.join(users)}, which run",
                         hint=f"stop them first ({session.command('deploy.stop')}); nothing was removed")
    return full


def remove_volume(session: Session, name: str, *, confirm: Callable[[str], bool], dry: bool) -> bool:
    """Remove this project's volume ``name`` once ``confirm`` says yes; whether it was (or would be) removed."""
    full = chosen_volume(session, name)
    if dry:
        session.ui.note(f"would remove volume {full} and all its data (asked by name)")
        return True
    if not confirm(full):
        session.ui.line(f"kept volume {full}: not confirmed")
        return False
    session.target.run(docker.remove_volume(full))
    session.ui.line(f"removed volume {full} (asked by name)")
    return True


def run(session: Session, *, dry: bool, volume: str | None, confirm: Callable[[str], bool]) -> None:
    """``deploy.clean``: under the deploy lock, so nothing is removed while a deploy builds or needs it."""
    if volume:
        chosen_volume(session, volume)  # a wrong name is one line before anything is removed
    with lock.held(session.target, session.state_dir, lock.me("clean"), session.unlock_hint(),
                   stale_after=session.settings.lock_stale_seconds, say=session.ui.note):
        clean(session, dry=dry)
        if volume:
            remove_volume(session, volume, dry=dry, confirm=confirm)
