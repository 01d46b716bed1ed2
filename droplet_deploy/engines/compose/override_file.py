"""Per release, before preflight's compose checks: write the compose override into the state directory (or
remove one a now-fit compose file no longer needs), and say what it changes, as a preflight item.

The override is written by the target, so it lands where compose runs, on this machine or on the host:
``<state dir>/compose.override.yml``. Every compose command of the stack then carries it as a second ``--file``
(``Stack.overrides``); tasks that do not deploy (logs, start, status) find it there.
"""

from __future__ import annotations

import posixpath

from droplet_deploy.commands import files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import ComposeFileError, DeployError
from droplet_deploy.engines.compose import compose_file, frontend, override, reboot
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.session import Session
from droplet_deploy.steps.preflight import Item
from droplet_deploy.transaction.release_files import Kept
from droplet_deploy.transport.target import Target

OVERRIDE_NAME = "compose.override.yml"


def override_path(state_dir: str) -> str:
    return posixpath.join(state_dir, OVERRIDE_NAME)


def existing_overrides(target: Target, state_dir: str) -> tuple[str, ...]:
    """The override the last deploy or rollback wrote, if any: what compose commands outside a deploy carry."""
    path = override_path(state_dir)
    return (path,) if target.probe(files.is_file(path)).ok else ()


def read_compose(target: Target, settings: Settings, path: str) -> str:
    """The compose file at ``path`` where compose will read it; in a dry run before the first upload, the local
    copy of the configured one."""
    text = target.read_text(path)
    if text is None and target.dry:
        local = settings.root / settings.compose_file
        text = local.read_text() if local.is_file() else None
    if text is None:
        raise ComposeFileError(f"cannot read {path} on {target.name}", hint="check deploy.compose_file")
    return text


def compose_version(stack: Stack) -> tuple[str, tuple[int, ...] | None]:
    shown = stack.compose_version
    return f"{' '.join(stack.binary)} {shown or '(unknown version)'}", override.parse_version(shown)


def prepare(session: Session, stack: Stack, image: str) -> Item:
    """Decide whether this release needs an override, write (or remove) it, and report it as a preflight item."""
    settings, target = session.settings, session.target
    path = override_path(session.state_dir)
    try:
        doc = compose_file.load(read_compose(target, settings, stack.compose_file), settings.compose_file)
        app = compose_file.app_service(doc, settings.app_service, settings.compose_file)
    except DeployError as exc:
        return Item("compose shape", False, str(exc))
    has_proxy = compose_file.has_service(doc, settings.proxy_service)
    others = release_services(settings, doc)
    stack.services = others
    problems = override.blockers(app)
    port = override.port_problem(app, settings.app_port)
    if port:
        problems.append(port)
    problems += first_problems(settings, others)
    problems += frontend.problems(doc, settings, has_proxy=has_proxy)
    if problems:
        return Item("compose shape", False, f"{settings.compose_file}: " + "; ".join(problems))

    found = override.changes(app, has_proxy=has_proxy, settings=settings, others=others)
    # Deploys either way; said here so nobody learns it from the first reboot.
    after_reboot = reboot.note(doc, app.name, settings.proxy_service, proxy_added=not has_proxy)
    also = f"; {after_reboot}" if after_reboot else ""
    if not found:
        if stack.overrides:
            target.run(files.remove_file(path))  # the file is fit now: an old override must not linger
        stack.overrides = ()
        return Item("compose shape", True, f"{settings.compose_file} deploys as written{also}")

    try:
        shown, version = compose_version(stack)
    except DeployError as exc:
        return Item("compose shape", False, str(exc))
    if not override.can_override(version):
        edits = "; ".join(override.manual_changes(app, found))
        return Item("compose shape", False, f"{shown} cannot apply the toolkit's compose override (it needs Compose v2.24+); "
                                 f"change {settings.compose_file} yourself: {edits}; or install Compose v2.24+")

    target.write_text(path, override.render(doc, app, settings, image, has_proxy=has_proxy, others=others))
    stack.overrides = (path,)
    return Item("compose shape", True, f"{settings.compose_file} as written, with {path}: " + describe(app, found)
                + also)


def release_services(settings: Settings, doc: dict) -> compose_file.ReleaseServices:
    """The services besides the app a release of this compose file builds and updates. Build paths resolve from
    where the configured compose file sits in the project (as the build sees them), also for the copy a release
    kept in the state directory."""
    return compose_file.release_services(doc, settings.app_service, settings.compose_file, context=settings.context,
                                         dockerfile=settings.dockerfile, proxy=settings.proxy_service)


def read_release_services(session: Session, stack: Stack) -> compose_file.ReleaseServices:
    """The same, for a task that writes no override (``inv build``, ``inv verify.build``)."""
    settings = session.settings
    doc = compose_file.load(read_compose(session.target, settings, stack.compose_file), settings.compose_file)
    return release_services(settings, doc)


def first_problems(settings: Settings, others: compose_file.ReleaseServices) -> list[str]:
    """``services_first`` names only services a release updates."""
    unknown = [name for name in settings.services_first if name not in others.names]
    if not unknown:
        return []
    return [f"deploy.services_first names {', '.join(unknown)}, which the release does not update (it updates: "
            f"{', '.join(others.names) or 'no service besides the app'}); list only those"]


def install(target: Target, state_dir: str, kept: Kept) -> None:
    """After a rollback: the override kept with the release becomes the one day-two tasks (logs, start, status)
    carry, or none when that release ran without one."""
    path = override_path(state_dir)
    if kept.override_file:
        target.run(files.copy_private(kept.override_file, path))
    else:
        target.run(files.remove_file(path))


def describe(app: compose_file.AppService, found: list[override.Change]) -> str:
    on_app = [c.done for c in found if c.on_app]
    rest = [c.done for c in found if not c.on_app]
    return "; ".join([*([f"service {app.name}: {', '.join(on_app)}"] if on_app else []), *rest])
