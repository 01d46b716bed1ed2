"""Zero-downtime rollout: the new container starts beside the old one, proves itself, takes traffic, then the
old one drains and goes. If the new one never proves itself, traffic stays on (or returns to) the old one.

    start beside  scale the app to N+1 (--no-recreate); on a first deploy, start the whole stack
    prove         poll the new container's own address until it reports the new revision
    hand over     only over a stack whose app container publishes the public port itself: stop it, start the
                  proxy on the port (handover.py; the one deploy with a gap, measured)
    switch        point the proxy's upstream at it, graceful nginx reload
    check         health and endpoint checks through the public port
    drain         SIGTERM the old container(s) with a drain time, remove them

A dry run walks the same phases: commands are printed instead of run, waits are described.
A phase that fails, or an interruption (Ctrl-C, SIGTERM, SIGHUP) before the drain, undoes what the rollout did:
before the switch the new container is removed (it took no traffic); after it, traffic goes back to the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from droplet_deploy.commands.compose import Compose
from droplet_deploy.core import signals
from droplet_deploy.core.errors import DeployError, HealthRejected, HealthTimeout, RolloutFailed
from droplet_deploy.engines.compose import handover, recover
from droplet_deploy.engines.compose.stack import Stack, Switched
from droplet_deploy.engines.snapshot import Container, Outcome, Snapshot
from droplet_deploy.steps import health, public_route


@dataclass
class Progress:
    """How far a rollout got: what undoing it must take back."""

    old: list[Container]
    serving: Container | None
    proxy: Container | None
    new: Container | None = None
    switching: Container | None = None  # set before the switch command: it may have applied when interrupted
    upstream: str | None = None  # what the proxy's upstream file names after the switch
    switched: Switched | None = None  # the switch that moved traffic, whose old nginx workers the drain waits for
    proof: str = ""
    # A takeover: the old containers that publish the port, the proxy created to take it, whether they stopped.
    holders: list[Container] = field(default_factory=list)
    created_proxy: Container | None = None
    handed: bool = False

    @property
    def started(self) -> Container:
        """The new container: every phase after ``start_beside`` has one."""
        assert self.new is not None, "start_beside sets it or fails"
        return self.new


def rollout(stack: Stack, image: str, revision: str, *, say: Callable[[str], None],
            health_timeout: float | None = None, defer: Defer | None = None) -> Outcome:
    return Rollout(stack, image, revision, say=say, timeout=health_timeout or stack.settings.health_timeout,
                   defer=defer).run()


Defer = Callable[[Callable[[], None], str], None]


class Rollout:
    def __init__(self, stack: Stack, image: str, revision: str, *, say: Callable[[str], None], timeout: float,
                 defer: Defer | None = None):
        self.stack, self.settings, self.target = stack, stack.settings, stack.target
        self.image, self.revision, self.say, self.timeout = image, revision, say, timeout
        # Given: the old release drains beside the caller's next steps (Session.defer) instead of before them.
        self.defer = defer

    def run(self) -> Outcome:
        before = self._without_leftovers(self.stack.snapshot())
        progress = Progress(list(before.apps), before.serving, before.proxy)
        try:
            for phase in (self.start_beside, self.prove, self.hand_over, self.switch, self.check):
                phase(progress)
        except DeployError as exc:
            with signals.shielded():
                self.undo(progress, interrupted=False)
            raise RolloutFailed(f"{exc.message}; {_still_serving(progress.serving)}", hint=exc.hint) from None
        except KeyboardInterrupt:
            with signals.shielded():
                self.undo(progress, interrupted=True)
            raise
        # Traffic has moved and proved itself: finish retiring the old ones even if asked to stop meanwhile.
        with signals.shielded():
            self.drain(progress)
        return Outcome(progress.new, progress.serving, not progress.old, progress.proof)

    # -- phases ------------------------------------------------------------------------------------------
    def start_beside(self, p: Progress) -> None:
        settings, compose = self.settings, self.stack.compose(self.image)
        if not p.old:
            if p.proxy is None:
                self.say("no proxy running: pointing its upstream at the app service before it starts")
                self.stack.reset_upstream(compose)
            self.say("no app container running: starting the whole stack")
            self.target.run(compose.up())
        else:
            self._start_next(p, compose)
        if self.target.dry:
            p.new = _planned(settings.project, settings.app_service, len(p.old) + 1)
            return
        after = self.stack.snapshot(upstream=False)  # the proxy's upstream is the same as before the start
        old_ids = {c.id for c in p.old}
        fresh = [c for c in after.apps if c.id not in old_ids]
        p.proxy = after.proxy
        if p.holders:
            p.created_proxy = next((c for c in after.of(settings.proxy_service) if not c.running), None)
        if len(fresh) != 1:
            p.new = None
            raise RolloutFailed(f"expected one new {settings.app_service} container, found {len(fresh)}",
                                hint="check `inv deploy.status` and the compose file's scale settings")
        p.new = fresh[0]

    def _start_next(self, p: Progress, compose: Compose) -> None:
        """One more app container beside the running ones (the one created beside verify.build, if any), and the
        proxy when none runs."""
        settings = self.settings
        self.say(f"starting {self.image} beside {', '.join(c.name for c in p.old)}")
        if not (p.proxy is not None and self.stack.started_ahead()):
            self.target.run(compose.up([settings.app_service], no_deps=True, no_recreate=True,
                                       scale={settings.app_service: len(p.old) + 1}))
        p.holders = handover.holding(p.old, settings.public_port) if p.proxy is None else []
        if p.holders:
            # The port is the old container's until the new one has proved itself: create, start later.
            self.target.run(compose.create([settings.proxy_service]))
        elif p.proxy is None:
            self.target.run(compose.up([settings.proxy_service], no_deps=True, no_recreate=True))

    def prove(self, p: Progress) -> None:
        """Poll the new container on its own address, before any traffic reaches it."""
        new = p.started
        if self.target.dry:
            self._plan(f"wait up to {self.timeout:g}s for {new.name} to report revision {self.revision[:12]}")
            return
        if not new.addresses:
            raise RolloutFailed(f"{new.name} has no network address")
        try:
            with self.target.tunnel(new.addresses[0], self.settings.app_port) as (host, port):
                health.wait(f"http://{host}:{port}{self.settings.health_path}", self.revision, timeout=self.timeout,
                            interval=self.settings.health_interval, mode=self.settings.health_revision,
                            witness=health.Witness.of(new), host=self.settings.probe_host,
                            progress=lambda line: self.say(f"{new.name}: {line.split(': ', 1)[-1]}"))
        except DeployError as exc:
            self.say(f"new container {new.name} failed: {exc}")
            raise RolloutFailed(f"new release never became healthy: {_reason(exc)}") from None

    def hand_over(self, p: Progress) -> None:
        if not p.holders:
            return
        names = ", ".join(c.name for c in p.holders)
        if self.target.dry:
            self._plan(f"hand port {self.settings.public_port} from {names} to {self.settings.proxy_service}: "
                       "stop it, start the proxy (a gap of about a second, measured)")
            return
        if p.created_proxy is None:
            raise RolloutFailed(f"no {self.settings.proxy_service} container was created to take port "
                                f"{self.settings.public_port} from {names}")

        def stopped() -> None:
            p.handed = True

        start = handover.starter(self.stack, p.created_proxy, self.image)
        handover.hand_over(self.stack, p.created_proxy, p.holders, start=start, say=self.say, stopped=stopped)
        p.proxy = p.created_proxy

    def switch(self, p: Progress) -> None:
        if self.target.dry:
            self._plan(f"switch {self.settings.proxy_service} to {p.started.name} (graceful nginx reload)")
            return
        if p.proxy is None:
            raise RolloutFailed(f"proxy service {self.settings.proxy_service!r} is not running",
                                hint="see `inv deploy.logs --service proxy`")
        new = p.started
        self.say(f"switching traffic to {new.name}")
        p.switching = new
        try:
            handover.refresh_config(self.stack, p.proxy)
            # Back as soon as the new configuration serves: the drain waits for nginx's old workers, off the path.
            p.switched = self.stack.switch(p.proxy, new, settle=False)
            p.upstream = p.switched.upstream
        except DeployError as exc:
            # The switch script restores the previous upstream when nginx rejects the new one: traffic never moved.
            p.switching = None
            raise RolloutFailed(f"proxy did not take the new upstream: {exc}") from None

    def check(self, p: Progress) -> None:
        settings = self.settings
        if self.target.dry:
            self._plan(f"check {settings.health_path} and {len(settings.check_endpoints)} endpoint(s) "
                       f"through port {settings.public_port}")
            return
        # Through the proxy, a label proves only the container its upstream names: it must be the new one.
        witness = health.routed([p.new], p.upstream)
        try:
            with public_route.opened(self.target, settings) as base:
                verdict = public_route.wait_at(base, settings, self.revision, witness=witness,
                                               timeout=min(self.timeout, 30.0))
                problems = public_route.check_endpoints(base, settings.check_endpoints, host=settings.probe_host)
        except (DeployError, OSError) as exc:
            raise RolloutFailed(f"new release failed after the switch: {_reason(exc)}") from None
        if problems:
            raise RolloutFailed("new release failed after the switch: post-deploy checks failed: "
                                + "; ".join(problems))
        p.proof = verdict.proof

    def drain(self, p: Progress) -> None:
        previous = [c for c in p.old if p.new is None or c.id != p.new.id]
        if not previous:
            return
        self.say(f"draining {', '.join(c.name for c in previous)} (up to {self.settings.drain_seconds}s)"
                 + (", meanwhile going on" if self.defer else ""))
        if self.defer is None:
            self._retire(previous, p.switched)
        else:
            self.defer(lambda: self._retire(previous, p.switched), "drain")

    def _retire(self, previous: list[Container], switched: Switched | None) -> None:
        try:
            self.stack.retire(previous, drain=self.settings.drain_seconds, after=switched)
        except DeployError as exc:
            # The new release serves and has proved itself: an old container that would not stop in time is
            # removed by force, and the deploy stands.
            self.say(f"drain did not finish cleanly ({exc}); removing {', '.join(c.name for c in previous)} by force")
            self.stack.remove(previous)

    # -- taking it back ----------------------------------------------------------------------------------
    def undo(self, p: Progress, *, interrupted: bool) -> None:
        """Leave things as they were before the rollout: the old container serving, nothing of ours beside it.

        After the switch, going back is chosen over finishing: the old container is running and proven while the
        new one has not passed its checks yet, and switching back drains the new one the way a deploy drains the
        old, so neither path drops a request but going back is the one that ends on a release known to work.
        """
        if self.target.dry:
            return
        if p.holders:
            self._hand_back(p, interrupted=interrupted)
        if p.switching is not None and p.proxy is not None and p.serving is not None:
            if interrupted:
                self.say("interrupted after the switch: going back to the release that served before")
            self._switch_back(p.proxy, p.serving, p.switching)
            return
        old_ids = {c.id for c in p.old}
        started = [c for c in self.stack.snapshot(upstream=False).of(self.settings.app_service) if c.id not in old_ids]
        if started:
            self.say(f"{'interrupted: ' if interrupted else ''}removing {', '.join(c.name for c in started)}, "
                     "which took no traffic")
            self.stack.remove(started)

    def _hand_back(self, p: Progress, *, interrupted: bool) -> None:
        """A takeover goes back to the stack as it ran: its own container on the port, no proxy of ours."""
        if p.handed:
            self.say(f"{'interrupted: ' if interrupted else ''}giving port {self.settings.public_port} back to "
                     f"{', '.join(c.name for c in p.holders)}")
        handover.hand_back(self.stack, p.created_proxy, p.holders, stopped=p.handed)
        p.switching = None  # the proxy that took traffic is gone: nothing to switch back

    def _switch_back(self, proxy: Container, serving: Container, new: Container) -> None:
        """Return traffic to the old container, then retire the new one the way a deploy retires the old.

        The new container has taken traffic by now: stopping it at once would cut the requests it is still
        answering, and the ones nginx's old workers hand it until the reload completes (both showed up as 502s
        under load). So wait until the public port answers with the old revision again, then drain.
        """
        settings = self.settings
        self.say(f"switching traffic back to {serving.name}")
        try:
            self.stack.switch(proxy, serving)
        except DeployError as exc:
            # The new container still takes the traffic: it must not be drained.
            raise RolloutFailed(f"could not switch traffic back to {serving.name} ({exc}); {new.name} serves "
                                f"revision {(new.revision or 'unknown')[:12]}",
                                hint="see `inv deploy.status`; `inv deploy.rollback` switches to the previous release") from None
        try:
            public_route.wait(self.target, settings, serving.revision, witness=health.Witness.of(serving),
                              timeout=min(settings.health_timeout, 30.0))
        except (DeployError, OSError) as exc:
            self.say(f"{serving.name} did not answer through the proxy after the switch back: {_reason(exc)}")
        self.say(f"draining {new.name} (up to {settings.drain_seconds}s)")
        self.stack.retire([new], drain=settings.drain_seconds)

    def _without_leftovers(self, snapshot: Snapshot) -> Snapshot:
        """Clear what an interrupted deploy left: stopped app containers (``--scale`` would count them) and
        running ones the proxy does not route to (the lock is ours, so no other rollout started them)."""
        snapshot = recover.traffic_on_proven(self.stack, snapshot, self.say)
        stale, orphans = snapshot.stopped_apps, snapshot.orphans()
        if stale:
            self.say(f"removing {len(stale)} stopped app container(s) left from an earlier run")
            self.stack.remove(stale)
        if orphans:
            self.say(f"removing {', '.join(c.name for c in orphans)}, left running by an interrupted deploy; "
                     f"{snapshot.upstream} serves")
            self.stack.retire(orphans, drain=self.settings.drain_seconds)
        if not (stale or orphans) or self.target.dry:
            return snapshot
        gone = {c.id for c in [*stale, *orphans]}
        return Snapshot(snapshot.app_service, snapshot.proxy_service,
                        tuple(c for c in snapshot.containers if c.id not in gone), snapshot.upstream)

    def _plan(self, text: str) -> None:
        self.target.say(f"[dry-run] [{self.target.name}] {text}")


def _planned(project: str, service: str, number: int) -> Container:
    """The container a dry run would start: compose names it <project>-<service>-<n>."""
    name = f"{project}-{service}-{number}"
    return Container(id=name, name=name, service=service, image="", revision=None, state="planned", health=None,
                     started_at="", number=number, addresses=())


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
