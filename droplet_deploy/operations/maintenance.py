"""``deploy.maintenance`` and ``deploy.live``: the front proxy's 503 page for one environment, switched under the
deploy lock (a deploy cannot rewrite the route meanwhile) and recorded in the release history."""

from __future__ import annotations

from droplet_deploy.front import maintenance
from droplet_deploy.session import Session
from droplet_deploy.transaction.frame import Transaction


def switch(session: Session, *, on: bool, message: str | None = None) -> str:
    serving = session.backend.snapshot(upstream=False).serving
    revision = serving.revision if serving is not None and serving.revision else "none"
    action = "maintenance" if on else "live"
    with Transaction(session, action, revision, serving.image if serving else "") as txn, txn.recorded():
        return maintenance.switch(session, on=on, message=message)
