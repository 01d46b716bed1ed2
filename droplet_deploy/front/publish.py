"""What a deploy does with the front proxy: before anything changes, refuse names another environment routes;
after the rollout, write this environment's route, start the front proxy on first use and load the whole config;
then wait for the certificates and redirect HTTP to HTTPS for each name that has one."""

from __future__ import annotations

import re
import time

from droplet_deploy.commands import files
from droplet_deploy.commands import front as cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import FrontError
from droplet_deploy.front import caddy_config, config_lock
from droplet_deploy.front import route as routes_mod
from droplet_deploy.front.proxy import FrontProxy, Running
from droplet_deploy.front.route import Route
from droplet_deploy.session import Session
from droplet_deploy.steps import health, public_route

POLL = 0.5


def applies(session: Session) -> bool:
    return bool(session.settings.hosts)


def was_routed(session: Session) -> bool:
    """This environment had host names at its last deploy (its route file is still there to withdraw)."""
    path = routes_mod.file_name(session.settings.front_dir, session.settings.project)
    return session.target.probe(files.is_file(path)).ok


def check(session: Session) -> None:
    """Refuse, before anything changes, names (and path prefixes) another environment on the host routes."""
    if not applies(session):
        return
    front = FrontProxy(session.target, session.settings)
    mine = routes_mod.of(session.settings, cmd.MOUNT)
    problem = _problem(mine, front.routes())
    if problem:
        raise FrontError(problem)


def _problem(mine: Route, others: list[Route]) -> str | None:
    return routes_mod.conflict(mine, others) or routes_mod.listener_mismatch(mine, others)


def publish(session: Session, revision: str | None = None) -> None:
    """This environment's route in the front proxy's config (or out of it, once ``hosts`` is empty); then the
    route is checked by host name through the front proxy: it answers healthy at ``revision``."""
    settings, target = session.settings, session.target
    front = FrontProxy(target, settings)
    with config_lock.changing(target, settings.front_dir, session.ui.note):
        others = front.routes()
        if not settings.hosts:
            if any(r.project == settings.project for r in others):
                _withdraw(session, front, [r for r in others if r.project != settings.project])
            return
        mine, routes = _routes_with_mine(settings, others)
        front.install_files()
        front.write_route(mine)
        running = front.ensure(mine.listeners, routes)
        _say_started(session, running)
        since = front.clock()
        loaded = front.certified(running.container)
        # A container started just now runs this very config: loading it again would only cut its orders short.
        if not (running.created or running.replaced):
            front.apply(running.container, mine.listeners, routes, loaded)
    names = ", ".join(f"{host}{mine.path or ''}" for host in mine.hosts)
    session.ui.note(f"front proxy routes {names} to 127.0.0.1:{mine.upstream_port}"
                    + (" (in maintenance)" if mine.maintenance else ""))
    if target.dry:
        return
    secure = certificates(session, front, running.container, mine, since, loaded) \
        if mine.tls == "auto" else set()
    check_by_name(session, mine, secure, revision)


def _routes_with_mine(settings: Settings, others: list[Route]) -> tuple[Route, list[Route]]:
    mine = routes_mod.of(settings, cmd.MOUNT)
    problem = _problem(mine, others)
    if problem:
        raise FrontError(problem)
    routes = routes_mod.merged(mine, others)
    return next(r for r in routes if r.project == mine.project), routes


def _say_started(session: Session, running: Running) -> None:
    if running.created:
        session.ui.note(f"started the front proxy {running.container} ({running_listeners(session)})")
    elif running.replaced:
        session.ui.note(f"replaced the front proxy {running.replaced} by {running.container} "
                        f"({session.settings.front_image})")


def running_listeners(session: Session) -> str:
    return routes_mod.listeners(session.settings).describe()


def check_by_name(session: Session, mine: Route, secure: set[str], revision: str | None) -> None:
    """The first host name, through the front proxy (HTTPS with SNI once it has its certificate): healthy at
    ``revision``, proven as the public port's check proves it."""
    settings, ui = session.settings, session.ui
    name = mine.hosts[0]
    if mine.maintenance:
        ui.note(f"{name} serves the maintenance page: not checked by name (inv deploy.live ends it)")
        return
    if mine.path and not settings.health_path.startswith(mine.path + "/"):
        ui.note(f"{name}: health_path {settings.health_path} is outside path_prefix {mine.path}: not checked by name")
        return
    snapshot = session.backend.snapshot()
    verdict = public_route.wait_by_name(session.target, settings, name, revision, secure=name in secure,
                                        witness=health.routed(snapshot.apps, snapshot.upstream))
    scheme = "https" if name in secure else "http"
    ui.note(f"{scheme}://{name}{settings.health_path} through the front proxy: {verdict.reason}")


def _withdraw(session: Session, front: FrontProxy, rest: list[Route]) -> None:
    front.drop_route(session.settings.project)
    container = front.running()
    if container is not None and rest:
        front.apply(container, rest[0].listeners, rest, front.certified(container))
    elif container is not None:
        front.apply(container, routes_mod.listeners(session.settings), [], set())
    session.ui.note("front proxy: this environment's host names are routed no more (hosts is empty)")


def certificates(session: Session, front: FrontProxy, container: str, mine: Route, since: str,
                 loaded: set[str]) -> set[str]:
    """Wait (certificate_timeout) until each name has a certificate or the CA refused it; redirect HTTP to HTTPS
    for the names that have one, and say in one line for each that has none why it stays on HTTP."""
    settings, ui = session.settings, session.ui
    deadline = time.monotonic() + settings.certificate_timeout
    refused: dict[str, str] = {}
    while True:
        have = front.certified(container)
        missing = [h for h in mine.hosts if mine.certificate is None and caddy_config.storage_name(h) not in have]
        refused.update(_refusals(front.errors_since(container, since), missing))
        waiting = [h for h in missing if h not in refused]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    if have != loaded:  # the redirects of names whose certificate came meanwhile
        with config_lock.changing(session.target, settings.front_dir, ui.note):
            # The routes as they are now: another environment may have changed its own while this one waited.
            _mine, routes = _routes_with_mine(settings, front.routes())
            front.apply(container, mine.listeners, routes, front.certified(container))
    secure = [h for h in mine.hosts if h not in missing]
    if secure:
        ui.note(f"HTTPS: {', '.join(secure)} ({'certificate files' if mine.certificate else 'certificate from ' + mine.acme_directory}); HTTP redirects there")
    for host in missing:
        why = refused.get(host, f"none within {settings.certificate_timeout:g}s (certificate_timeout)")
        ui.line(f"    WARN  no certificate for {host}: {why}; {host} stays on HTTP meanwhile (check that its DNS "
                "A/AAAA records point at this host and that port 80 is open to the internet; the front proxy "
                "keeps trying, the next deploy redirects once it has one)")
    return set(secure)


def _refusals(errors: list[dict], names: list[str]) -> dict[str, str]:
    """The CA's (or Caddy's) reason for each of ``names`` it failed to get a certificate for. A name counts only
    as a whole word: b.example.com is not refused by an error about www.b.example.com."""
    found = {}
    for entry in errors:
        if "context canceled" in str(entry.get("error", "")):
            continue  # an order cut short by a config load; Caddy starts it again
        text = " ".join(str(entry.get(k, "")) for k in ("identifier", "error", "msg"))
        for name in names:
            if name not in found and re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)", text):
                found[name] = str(entry.get("error") or entry.get("msg"))[:300]
    return found
