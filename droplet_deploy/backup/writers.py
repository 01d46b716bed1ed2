"""Writers stopped while a database service is restored into, then brought back proven at their revision.

A restore over a live PostgreSQL database runs in one transaction, but a write that lands after it commits would
mix today's rows into the restored state. So every service that may write stops first: the app and any worker,
every running service of the stack except the database's own (``backup_service``) and the proxy. The proxy keeps
running and answers 502 meanwhile (the app scaled to zero, not a maintenance page). Afterwards the same services
start again, the proxy re-reads the app's address (nginx resolved it when it loaded; a restarted container may
come back on another one), and the public route must answer healthy at the app's revision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from droplet_deploy.backup import postgres
from droplet_deploy.commands import proxy as proxy_cmd
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.session import Session
from droplet_deploy.steps import health, public_route


def writers(session: Session) -> list[str]:
    """The services that run now and may write to the database, app first."""
    settings = session.settings
    spared = {postgres.service_of(settings), settings.proxy_service}
    running = {c.service for c in session.backend.backup_snapshot().containers if c.running} - spared
    return sorted(running, key=lambda s: (s != settings.app_service, s))


@contextlib.contextmanager
def stopped(session: Session, serving: Container | None) -> Iterator[list[str]]:
    """Stop the writers for the block; start them again whatever happened, then prove the app's revision."""
    services = writers(session)
    if not services or serving is None:
        yield services
        return
    ui = session.ui
    with ui.step("stop writers", ", ".join(services)):
        session.backend.lifecycle("stop", services, serving.image)
    try:
        yield services
    finally:
        with ui.step("start writers", ", ".join(services)):
            session.backend.lifecycle("start", services, serving.image)
    if not session.target.dry:
        snapshot = session.backend.snapshot()
        if snapshot.proxy is not None and snapshot.upstream:
            # nginx resolved the app's name when it loaded; a restarted container may come back on another address.
            session.target.run(proxy_cmd.switch(snapshot.proxy.id, session.settings.upstream_file, snapshot.upstream,
                                                session.settings.app_port))
        verdict = public_route.wait(session.target, session.settings, serving.revision,
                                    witness=health.routed(snapshot.apps, snapshot.upstream), progress=ui.note)
        ui.note(f"serving again: {verdict.reason}")
