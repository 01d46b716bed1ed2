"""``deploy.start`` and ``deploy.stop``: the engine's way, as one recorded change; after a start, wait until the
public route serves the release's revision again."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.operations.services import deployed
from droplet_deploy.session import Session
from droplet_deploy.steps import health, public_route
from droplet_deploy.transaction.frame import Transaction


def lifecycle(session: Session, action: str, services: Sequence[str] = ()) -> str:
    """Start or stop (the backend's way) as one recorded change; after start, wait for health."""
    settings, target = session.settings, session.target
    snapshot = deployed(session, action)
    app = snapshot.newest_app
    touched = ", ".join(services) or "all services"
    done = f"{'planned' if target.dry else 'done'}: {action} {touched} of {settings.env} on {session.where}"
    with Transaction(session, action, app.revision if app and app.revision else "none",
                     app.image if app else "") as txn, txn.recorded():
        session.backend.lifecycle(action, services, app.image if app else None)
        if _serves_after(session, action, services) and app is not None:
            done += "; " + wait_serving(session, app.revision)
    return done


def _serves_after(session: Session, action: str, services: Sequence[str]) -> bool:
    """Whether the public port should answer after ``action`` on ``services``: then it is waited for."""
    settings = session.settings
    touched_traffic = not services or settings.app_service in services or settings.proxy_service in services
    return action != "stop" and not session.target.dry and touched_traffic


def wait_serving(session: Session, revision: str | None) -> str:
    """Wait until the public route answers healthy at ``revision``; how it was proven."""
    snapshot = session.backend.snapshot()
    verdict = public_route.wait(session.target, session.settings, revision,
                                witness=health.routed(snapshot.apps, snapshot.upstream), progress=session.ui.note)
    return verdict.reason
