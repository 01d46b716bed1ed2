"""`deploy.status`: what serves, whether it is healthy, what each container does, who holds the lock, and
the last releases. ``gather`` only reads (it runs under ``--dry`` too); ``render`` is pure.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any

from droplet_deploy.commands import files
from droplet_deploy.core.redact import redact
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.session import Session
from droplet_deploy.steps import health, public_route
from droplet_deploy.transaction import env_file as envfile
from droplet_deploy.transaction import history, lock


@dataclass(frozen=True)
class Status:
    env: str
    where: str
    release_dir: str | None
    containers: list[Container]
    upstream: str | None
    serving: Container | None
    health_url: str
    health: health.Verdict | None
    lock_present: bool
    holder: lock.Holder | None
    holder_gone: bool
    releases: list[history.Record]
    now: float
    unreadable: int = 0  # history lines that could not be read (skipped)
    lock_note: str = ""  # why the holder counts as alive or gone (lock.Staleness.why)
    env_file: envfile.Drift | None = None  # None: no env file configured


def gather(session: Session, releases: int = 5) -> Status:
    target, settings = session.target, session.settings
    snapshot = session.backend.snapshot()
    serving = snapshot.serving

    verdict = None
    if snapshot.proxy is not None:
        verdict = public_route.answer(target, settings, serving.revision if serving else None,
                                      witness=health.routed(snapshot.apps, snapshot.upstream))

    found = lock.read_state(target, session.state_dir)
    staleness = lock.judge(found, settings.lock_stale_seconds) if found.present else None
    clock = target.probe(files.clock()).stdout.strip()
    recent = history.recent_lines(target, session.state_dir, releases)
    return Status(
        env=settings.env, where=session.where,
        release_dir=target.cwd if settings.is_remote else None,
        containers=list(snapshot.containers), upstream=snapshot.upstream, serving=serving,
        health_url=settings.health_url, health=verdict,
        lock_present=found.present, holder=found.holder, holder_gone=bool(staleness and staleness.stale),
        lock_note=staleness.why if staleness else "",
        releases=recent.records, unreadable=recent.unreadable,
        env_file=envfile.drift(target, settings, session.state_dir, recent.records),
        now=float(clock) if clock.isdigit() else time.time(),
    )


def render(status: Status, unlock_hint: str = "inv deploy.unlock",
           restart_hint: str = "inv deploy.restart") -> list[str]:
    return [
        f"{status.env} on {status.where}",
        _revision_line(status.serving),
        _health_line(status),
        f"  proxy      -> {status.upstream or 'no upstream'}",
        f"  lock       {lock_line(status, unlock_hint)}",
        *([f"  release    {status.release_dir}"] if status.release_dir else []),
        *_env_file_lines(status.env_file, restart_hint),
        *_container_lines(status),
        *_behind_lines(status),
        *_release_lines(status),
    ]


def behind(status: Status) -> list[Container]:
    """Running containers labelled with another revision than the serving app's: a worker left on an old image
    (started by hand, or by a deploy that stopped before it got to it). Unlabelled images (a database) do not
    count, nor the app's own containers beside the serving one (a rollout in progress)."""
    serving = status.serving
    if serving is None or serving.revision is None:
        return []
    return [c for c in status.containers if c.running and c.revision and c.revision != serving.revision
            and c.service != serving.service]


def _behind_lines(status: Status) -> list[str]:
    found = behind(status)
    if not found:
        return []
    app = (status.serving.revision or "")[:12] if status.serving else ""
    return [f"  warning: {c.service} ({c.name}) runs revision {(c.revision or '')[:12]}, the app {app}: a deploy or "
            f"`inv deploy.restart --service {c.service}` brings it to the app's release" for c in found]


def as_json(status: Status) -> dict[str, Any]:
    """The same facts as ``render``, as data (``deploy.status --json``, for CI): masked as the text is."""
    serving = status.serving
    return {
        "env": status.env,
        "where": status.where,
        "release_dir": status.release_dir,
        "revision": serving.revision if serving else None,
        "image": serving.image if serving else None,
        "health": None if status.health is None else {
            "ok": status.health.ok, "reason": status.health.reason, "proof": status.health.proof,
            "url": status.health_url},
        "upstream": status.upstream,
        "lock": {"held": status.lock_present, "stale": status.holder_gone, "note": status.lock_note,
                 "holder": None if status.holder is None else {
                     "who": status.holder.holder, "pid": status.holder.pid, "revision": status.holder.revision,
                     "since": status.holder.started_at, "machine": status.holder.machine}},
        "env_file": None if status.env_file is None else {
            "path": status.env_file.path, "sha256": status.env_file.now, "applied_sha256": status.env_file.before,
            "changed": status.env_file.changed},
        "containers": [{
            "service": c.service, "name": c.name, "state": c.state, "health": c.health, "image": c.image,
            "revision": c.revision, "serving": serving is not None and c.id == serving.id,
            "uptime": uptime(c.started_at, status.now) if c.running else None,
        } for c in status.containers],
        "releases": [{
            "started_at": r.started_at, "revision": r.revision, "image": r.image, "action": r.action,
            "result": r.result, "duration_s": r.duration_s, "who": r.who, "reason": redact(r.reason),
            "proof": r.proof, "backup": r.backup, "release": r.release,
        } for r in reversed(status.releases)],
        "unreadable_history_lines": status.unreadable,
        "services": {c.service: c.revision for c in status.containers if c.running},
        "behind": [{"service": c.service, "name": c.name, "revision": c.revision} for c in behind(status)],
    }


def _revision_line(serving: Container | None) -> str:
    if serving is None:
        return "  revision   nothing running"
    return f"  revision   {(serving.revision or 'unknown')[:12]}  ({serving.image})"


def _health_line(status: Status) -> str:
    if status.health is None:
        return "  health     no proxy running"
    return (f"  health     {'OK' if status.health.ok else 'FAILING'}: {status.health.reason}  "
            f"({status.health_url})")


def _env_file_lines(found: envfile.Drift | None, restart_hint: str) -> list[str]:
    if found is None:
        return []
    fix = f"; the running app does not have it yet: `{restart_hint}` applies it without downtime" \
        if found.changed else ""
    return [f"  env file   {found.describe()}{fix}"]


def _container_lines(status: Status) -> list[str]:
    lines = ["  containers" + ("" if status.containers else "  none")]
    serving = status.serving
    for c in status.containers:
        state = c.state + (f" ({c.health})" if c.health else "")
        up = f"up {uptime(c.started_at, status.now)}" if c.running else ""
        mark = "  <- serving" if serving is not None and c.id == serving.id else ""
        lines.append(f"    {c.service:<8} {c.name:<32} {state:<20} {up:<12} {(c.revision or '-')[:12]}{mark}")
    return lines


def _release_lines(status: Status) -> list[str]:
    lines = [f"  releases   last {len(status.releases)}, newest first" if status.releases
             else "  releases   none recorded"]
    for r in reversed(status.releases):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at)) if r.started_at else "unknown time"
        # Masked again: a line written by an older version may hold a credential.
        reason = f"  {redact(r.reason)[:80]}" if r.reason else ""
        lines.append(f"    {when:<19}  {r.revision[:12]:<12}  {r.action:<8} {r.result:<11} {r.duration_s:>6.1f}s  "
                     f"{r.who}{reason}")
    if status.unreadable:
        lines.append(f"    ({status.unreadable} unreadable history line(s) skipped: cut short or edited by hand)")
    return lines


def lock_line(status: Status, unlock_hint: str) -> str:
    if not status.lock_present:
        return "free"
    why = status.lock_note or "a process that is gone"
    if status.holder is None:
        if status.holder_gone:
            return f"STALE: no readable holder (the next deploy takes it over, or clear it: {unlock_hint})"
        return f"held, holder unreadable (if no deploy runs: {unlock_hint} --force)"
    if status.holder_gone:
        return f"STALE: held by {status.holder.describe()}, {why} (the next deploy takes it over, or clear it: " \
               f"{unlock_hint})"
    return f"held by {status.holder.describe()}" + (f", {status.lock_note}" if status.lock_note else "")


def uptime(started_at: str, now: float) -> str:
    """Docker's ``StartedAt`` (RFC 3339, nanoseconds, UTC) to a short age like ``2h05m``."""
    try:
        started = calendar.timegm(time.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "?"
    if started_at.startswith("0001-"):
        return "-"
    return duration(max(0.0, now - started))


def duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"
