"""Zero-downtime rollout: the new container starts beside the old one, proves itself, takes traffic, then the
old one drains and goes. If the new one never proves itself, traffic stays on (or returns to) the old one.

    start new (scale app to N+1, --no-recreate)  ─▶  poll the new container's own address until it reports the
    new revision  ─▶  point the proxy at it, graceful nginx reload  ─▶  health + endpoint checks through the
    public port  ─▶  SIGTERM the old container(s) with a drain time, remove them
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import requests

from . import health, signals
from .config import Settings
from .containers import Container
from .errors import DeployError, HealthRejected, HealthTimeout, RolloutFailed
from .stack import Stack


@dataclass(frozen=True)
class Outcome:
    container: Container | None
    previous: Container | None
    first_deploy: bool
    proof: str = ""  # how the revision was proven through the public port: "health body", "image label of <name>"


def check_endpoints(base_url: str, paths: list[str], timeout: float = 10.0) -> list[str]:
    """GET each path; return one problem line per endpoint that does not answer 2xx/3xx."""
    problems = []
    for path in paths:
        try:
            response = requests.get(base_url + path, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            problems.append(f"{path}: {type(exc).__name__}")
            continue
        if response.status_code >= 400:
            problems.append(f"{path}: HTTP {response.status_code}")
    return problems


def rollout(stack: Stack, image: str, revision: str, *, say: Callable[[str], None],
            health_timeout: float | None = None) -> Outcome:
    settings = stack.settings
    target = stack.target
    compose = stack.compose(image)
    timeout = health_timeout or settings.health_timeout

    # Leftovers of an interrupted deploy would be counted by --scale; clear the stopped ones first.
    stale = [c for c in stack.all_apps() if not c.running]
    if stale:
        say(f"removing {len(stale)} stopped app container(s) left from an earlier run")
        target.run(["docker", "rm", "--force", *[c.id for c in stale]])

    proxy = stack.proxy()
    old = _without_orphans(stack, stack.apps(), proxy, say)
    serving = stack.serving() if old else None
    if target.dry:
        _print_plan(target, stack, compose, old, proxy)
        return Outcome(None, serving, not old)

    # Until traffic moves, an interruption (Ctrl-C, SIGTERM, SIGHUP) removes what this rollout started; after,
    # it switches back to the old container, which is still running and proven (see _undo).
    progress = _Progress({c.id for c in old}, serving)
    try:
        new = _start_and_switch(stack, compose, image, revision, old, proxy, serving, timeout, progress, say)
    except KeyboardInterrupt:
        with signals.shielded():
            _undo(stack, progress, say)
        raise

    previous = [c for c in old if c.id != new.id]
    if previous:
        say(f"draining {', '.join(c.name for c in previous)} (up to {settings.drain_seconds}s)")
        # Traffic has moved and proved itself: finish retiring the old ones even if asked to stop meanwhile.
        with signals.shielded():
            stack.retire(previous, drain=settings.drain_seconds)
    return Outcome(new, serving, not old, progress.proof)


@dataclass
class _Progress:
    """How far a rollout got, for undoing it when interrupted."""

    old_ids: set[str]
    serving: Container | None
    proxy: Container | None = None
    switched_to: Container | None = None  # set before the switch command: it may have applied when interrupted
    proof: str = ""


def _start_and_switch(stack: Stack, compose, image: str, revision: str, old: list[Container],
                      proxy: Container | None, serving: Container | None, timeout: float, progress: _Progress,
                      say: Callable[[str], None]) -> Container:
    """Start the new container beside the old ones, prove it, switch traffic to it and check it through the proxy."""
    settings, target = stack.settings, stack.target
    if not old:
        if proxy is None:
            say("no proxy running: pointing its upstream at the app service before it starts")
            stack.reset_upstream(compose)
        say("no app container running: starting the whole stack")
        target.run(compose.up())
    else:
        say(f"starting {image} beside {', '.join(c.name for c in old)}")
        target.run(compose.up([settings.app_service], no_deps=True, no_recreate=True,
                              scale={settings.app_service: len(old) + 1}))
        if proxy is None:
            target.run(compose.up([settings.proxy_service], no_deps=True, no_recreate=True))
    fresh = [c for c in stack.apps() if c.id not in progress.old_ids]
    if len(fresh) != 1:
        raise RolloutFailed(f"expected one new {settings.app_service} container, found {len(fresh)}",
                            hint="check `inv deploy.status` and the compose file's scale settings")
    new = fresh[0]
    still = _still_serving(serving)

    try:
        _wait_container(stack, new, revision, timeout, say)
    except DeployError as exc:
        say(f"new container {new.name} failed: {exc}; removing it")
        stack.retire([new], drain=0)
        raise RolloutFailed(f"new release never became healthy: {_reason(exc)}; {still}") from None

    proxy = stack.proxy()
    if proxy is None:
        stack.retire([new], drain=0)
        raise RolloutFailed(f"proxy service {settings.proxy_service!r} is not running; {still}",
                            hint="see `inv deploy.logs --service proxy`")
    say(f"switching traffic to {new.name}")
    progress.proxy, progress.switched_to = proxy, new
    try:
        stack.switch(proxy, new)
    except DeployError as exc:
        # The switch script restores the previous upstream when nginx rejects the new one: traffic never moved.
        stack.retire([new], drain=0)
        raise RolloutFailed(f"proxy did not take the new upstream: {exc}; {still}") from None
    try:
        with target.tunnel("127.0.0.1", settings.public_port) as (host, port):
            base = f"http://{host}:{port}"
            # Through the proxy, a label proves only the container its upstream names: it must be the new one.
            verdict = health.wait(base + settings.health_path, revision, timeout=min(timeout, 30.0),
                                  interval=settings.health_interval, mode=settings.health_revision,
                                  witness=health.routed([new], stack.upstream(proxy)))
            progress.proof = verdict.proof
            problems = check_endpoints(base, settings.check_endpoints)
        if problems:
            raise RolloutFailed("post-deploy checks failed: " + "; ".join(problems))
    except (DeployError, OSError) as exc:
        _switch_back(stack, proxy, serving, new, say)
        raise RolloutFailed(f"new release failed after the switch: {_reason(exc)}; {still}") from None
    return new


def _undo(stack: Stack, progress: _Progress, say: Callable[[str], None]) -> None:
    """Leave things as they were before the rollout: the old container serving, nothing of ours beside it.

    After the switch, going back is chosen over finishing: the old container is running and proven while the
    new one has not passed its checks yet, and switching back drains the new one the way a deploy drains the
    old, so neither path drops a request but going back is the one that ends on a release known to work.
    """
    if progress.switched_to is not None and progress.proxy is not None and progress.serving is not None:
        say("interrupted after the switch: going back to the release that served before")
        _switch_back(stack, progress.proxy, progress.serving, progress.switched_to, say)
        return
    started = [c for c in stack.all_apps() if c.id not in progress.old_ids]
    if started:
        say(f"interrupted: removing {', '.join(c.name for c in started)}, which took no traffic")
        stack.retire(started, drain=0)


def _without_orphans(stack: Stack, running: list[Container], proxy: Container | None,
                     say: Callable[[str], None]) -> list[Container]:
    """Remove app containers a killed deploy left running beside the one the proxy routes to.

    The lock is ours, so no other rollout started them; the proxy's upstream names one container, so they take
    no traffic. Left in place they would count as "old" and widen the next ``--scale``.
    """
    upstream = stack.upstream(proxy) if proxy is not None and len(running) > 1 else None
    if upstream is None or upstream not in {c.name for c in running}:
        return running  # the upstream names the service (first start): every container may take traffic
    orphans = [c for c in running if c.name != upstream]
    say(f"removing {', '.join(c.name for c in orphans)}, left running by an interrupted deploy; "
        f"{upstream} serves")
    stack.retire(orphans, drain=stack.settings.drain_seconds)
    return [c for c in running if c.name == upstream]


def _wait_container(stack: Stack, container: Container, revision: str, timeout: float,
                    say: Callable[[str], None]) -> None:
    """Poll the new container on its own address, before any traffic reaches it."""
    if not container.addresses:
        raise RolloutFailed(f"{container.name} has no network address")
    with stack.target.tunnel(container.addresses[0], stack.settings.app_port) as (host, port):
        url = f"http://{host}:{port}{stack.settings.health_path}"
        health.wait(url, revision, timeout=timeout, interval=stack.settings.health_interval,
                    mode=stack.settings.health_revision, witness=health.Witness.of(container),
                    progress=lambda line: say(f"{container.name}: {line.split(': ', 1)[-1]}"))


def _switch_back(stack: Stack, proxy: Container, serving: Container | None, new: Container,
                 say: Callable[[str], None]) -> None:
    """Return traffic to the old container, then retire the new one the way a deploy retires the old.

    The new container has taken traffic by now: stopping it at once would cut the requests it is still
    answering, and the ones nginx's old workers hand it until the reload completes (both showed up as 502s
    under load). So wait until the public port answers with the old revision again, then drain.
    """
    settings = stack.settings
    if serving is not None:
        say(f"switching traffic back to {serving.name}")
        stack.switch(proxy, serving)
        try:
            with stack.target.tunnel("127.0.0.1", settings.public_port) as (host, port):
                health.wait(f"http://{host}:{port}{settings.health_path}", serving.revision,
                            timeout=min(settings.health_timeout, 30.0), interval=settings.health_interval,
                            mode=settings.health_revision, witness=health.Witness.of(serving))
        except (DeployError, OSError) as exc:
            say(f"{serving.name} did not answer through the proxy after the switch back: {_reason(exc)}")
    say(f"draining {new.name} (up to {settings.drain_seconds}s)")
    stack.retire([new], drain=settings.drain_seconds)


def _still_serving(container: Container | None) -> str:
    if container is None:
        return "nothing was serving before this deploy"
    return f"{container.name} still serving revision {(container.revision or 'unknown')[:12]}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, HealthTimeout):
        return f"not healthy after {exc.timeout:g}s, last seen: {exc.last_seen}"
    if isinstance(exc, HealthRejected):
        return f"{exc.last_seen}, the same for {exc.held:.1f}s ({exc.fix})"
    return str(exc)


def _print_plan(target, stack: Stack, compose, old: list[Container], proxy: Container | None) -> None:
    settings: Settings = stack.settings
    if not old:
        if proxy is None:
            stack.reset_upstream(compose)
        target.run(compose.up())
    else:
        target.run(compose.up([settings.app_service], no_deps=True, no_recreate=True,
                              scale={settings.app_service: len(old) + 1}))
    target.say(f"[dry-run] [{target.name}] wait for the new container to report the revision, "
               f"switch {settings.proxy_service} to it, then stop {', '.join(c.name for c in old) or 'nothing'} "
               f"with {settings.drain_seconds}s drain")
