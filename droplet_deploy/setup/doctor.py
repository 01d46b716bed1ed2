"""``doctor``: every check a deploy of one environment makes, run without building, writing or changing anything,
each with what to do about it.

    the repository   config, compose file shape, Dockerfile lines for the revision, .dockerignore, health route,
                     check_command
    where it runs    the engine and compose, and on a host: the connection and its key, free disk, the env file

Each check is a ``Finding``; a failing one says how to fix it. ``run`` reports them through ``report`` and returns
them, so the task exits non-zero when any failed. Opening a host connection is itself a check: a host that cannot
be reached fails there, and the checks that need it are not run.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import DeployError
from droplet_deploy.engines.compose import checks as compose_checks
from droplet_deploy.engines.compose import compose_file, override, reboot
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.host import checks as host_checks
from droplet_deploy.host import ship
from droplet_deploy.session import Session
from droplet_deploy.setup import frameworks, init
from droplet_deploy.steps import preflight


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not a failure: worth knowing, the deploy still works

    @property
    def label(self) -> str:
        return "PASS" if self.ok else ("WARN" if self.warning else "FAIL")

    @property
    def failed(self) -> bool:
        return not self.ok and not self.warning


def repository(settings: Settings) -> list[Finding]:
    """What the files of the repository say, read as text: nothing runs."""
    root = settings.root
    found = [_compose_shape(settings)]
    dockerfile = root / settings.context / settings.dockerfile
    text = dockerfile.read_text() if dockerfile.is_file() else ""
    found.append(_dockerfile(settings, text))
    found.append(_dockerignore(settings))
    found.append(_health_route(settings))
    found.append(_check_command(settings))
    return found


def _compose_shape(settings: Settings) -> Finding:
    where = settings.compose_file
    try:
        doc = compose_file.load((settings.root / where).read_text(), where)
        app = compose_file.app_service(doc, settings.app_service, where)
    except (DeployError, OSError) as exc:
        return Finding("compose shape", False, str(exc), "fix the compose file, or set deploy.compose_file")
    problems = override.blockers(app)
    port = override.port_problem(app, settings.app_port)
    if port:
        problems.append(port)
    if problems:
        return Finding("compose shape", False, f"{where}: " + "; ".join(problems), "change what it names")
    has_proxy = compose_file.has_service(doc, settings.proxy_service)
    after_reboot = reboot.note(doc, app.name, settings.proxy_service, proxy_added=not has_proxy)
    if after_reboot:
        head, _, fix = after_reboot.partition(": ")
        return Finding("compose shape", False, f"{where}: {head}", fix, warning=True)
    changes = override.changes(app, has_proxy=has_proxy, settings=settings)
    if not changes:
        return Finding("compose shape", True, f"{where} deploys as written")
    return Finding("compose shape", True, f"{where} deploys with the toolkit's override: "
                   + "; ".join(c.done for c in changes))


def _dockerfile(settings: Settings, text: str) -> Finding:
    path = os.path.join(settings.context, settings.dockerfile)
    if not text:
        return Finding("Dockerfile", False, f"no {path}", "add a Dockerfile, or point deploy.dockerfile at it")
    missing = init.dockerfile_lines_to_add(text)
    if missing:
        return Finding("Dockerfile", False, f"{path} lacks what carries the revision and a non-root user",
                       "add to its final stage, after the code is copied: " + " | ".join(missing))
    return Finding("Dockerfile", True, f"{os.path.normpath(path)} carries the revision (ARG, label, APP_REVISION) and runs as non-root")


def ignored(patterns: Iterable[str], name: str) -> bool:
    """Whether ``.dockerignore`` patterns keep the top-level file ``name`` out of the build context (the last
    matching pattern wins; ``!`` re-includes)."""
    excluded = False
    for raw in patterns:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.lstrip("/").removeprefix("**/")
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern.rstrip("/")):
            excluded = not negate
    return excluded


def _dockerignore(settings: Settings) -> Finding:
    context = settings.root / settings.context
    secrets = sorted({".env", *([os.path.basename(settings.env_file)] if settings.env_file else [])})
    path = context / ".dockerignore"
    patterns = path.read_text().splitlines() if path.is_file() else []
    let_in = [name for name in secrets if not ignored(patterns, name)]
    present = [name for name in let_in if (context / name).exists()]
    if present:
        return Finding(".dockerignore", False, f"{', '.join(present)} would be copied into the image "
                       "(verify.build refuses an image with it)", f"add {', '.join(present)} to "
                       f"{path.relative_to(settings.root)} (`droplet-deploy init` writes it)")
    if let_in:
        return Finding(".dockerignore", True, f"no {', '.join(let_in)} in the build context now; add "
                       f"{', '.join(let_in)} to .dockerignore before one appears")
    return Finding(".dockerignore", True, f"keeps {', '.join(secrets)} out of the image")


def _health_route(settings: Settings) -> Finding:
    wanted = settings.health_path.split("?", 1)[0].rstrip("/") or "/"
    sources = list(init.read_sources(settings.root))
    for path, where in frameworks.django_health_paths(sources):
        if path.rstrip("/") == wanted:
            return Finding("health route", True, f"{settings.health_path} is routed in {where}")
    for name, text in sources:
        for quote in ("'", '"', "`"):
            if f"{quote}{wanted}{quote}" in text or f"{quote}{wanted}/{quote}" in text:
                return Finding("health route", True, f"{settings.health_path} is routed in {name}")
    return Finding("health route", False, f"{settings.health_path} is not mentioned in the source",
                   "set deploy.health_path to the app's health route (any 2xx answer is enough)", warning=True)


def _check_command(settings: Settings) -> Finding:
    command = settings.check_command
    if command is None:
        return Finding("check command", True, "none (check_command: null): verify.build does not import the app")
    if command[:3] == ["python3", "-m", "app"] and not (settings.root / "app" / "__main__.py").is_file():
        return Finding("check command", False, f"`{' '.join(command)}` needs an `app` package with __main__, "
                       "and the repository has none", "set deploy.check_command to a command that imports your "
                       "app and prints `N routes`, or check_command: null")
    return Finding("check command", True, f"`{' '.join(command)}` (run by verify.build in the image)")


def where_it_runs(session: Session) -> list[Finding]:
    """The engine and compose where the stack runs, and on a host its disk and env file: read-only commands."""
    target, settings = session.target, session.settings
    found = [_item(preflight.engine(target))]
    stack = Stack(target, settings)
    found.append(_item(compose_checks.compose(stack)))
    if not found[0].ok:
        return found
    # What runs today: the public port's holder and the volumes a first deploy would take over.
    if not settings.is_remote:
        found.append(_item(compose_checks.public_port(settings, stack.snapshot(upstream=False), target)))
    found += [_item(item) for item in compose_checks.takeover_items(stack, local=not settings.is_remote)]
    if settings.is_remote:
        found.append(_item(host_checks.disk(session)))
        if settings.env_file_path:
            found.append(_item(ship.env_file_check(target, settings.env_file_path)))
    return found


def _item(item: preflight.Item) -> Finding:
    return Finding(item.name, item.ok, item.detail)


def run(settings: Settings, open_target: Callable[[], Session], report: Callable[[Finding], None]) -> list[Finding]:
    """Every check, reported as it is made; ``open_target`` opens the session (for a host: the connection)."""
    found: list[Finding] = []

    def add(finding: Finding) -> None:
        found.append(finding)
        report(finding)

    for finding in repository(settings):
        add(finding)
    try:
        session = open_target()
    except DeployError as exc:
        add(Finding("connection" if settings.is_remote else "engine", False, exc.message, exc.hint or ""))
        return found
    with session:
        if settings.is_remote:
            add(Finding("connection", True, f"{session.where}: logged in, host key verified"))
        for finding in where_it_runs(session):
            add(finding)
    return found
