"""``deploy.unlock``: clear a deploy lock whose holder is gone (or, forced, one that is not)."""

from __future__ import annotations

from droplet_deploy.commands import files
from droplet_deploy.core.errors import LockHeld
from droplet_deploy.session import Session
from droplet_deploy.transaction import lock


def unlock(session: Session, *, force: bool = False) -> str:
    """Clear the deploy lock if its holder is gone (or with ``force``); a live holder's lock is refused."""
    target, state_dir, where = session.target, session.state_dir, session.where
    path = lock.lock_dir(state_dir)
    state = lock.read_state(target, state_dir)
    if not state.present:
        return f"no deploy lock on {where}"
    verdict = lock.judge(state, session.settings.lock_stale_seconds)
    whose = state.holder.describe() if state.holder else "an unknown holder (no readable holder.json)"
    if not verdict.stale and not force:
        raise LockHeld(f"[{where}] not clearing the deploy lock of {whose}, {verdict.why}",
                       hint=f"wait for it to finish; if you are sure it is gone: {session.unlock_hint()} --force")
    if target.dry:
        return f"would clear the deploy lock held by {whose} on {where}"
    if not target.run(files.lock_remove_if(path, state.text), check=False).ok:
        raise LockHeld(f"[{where}] the deploy lock changed while it was being cleared: another deploy took it",
                       hint="see who holds it now with `inv deploy.status`")
    note = verdict.why if verdict.stale else f"forced; {verdict.why}: stop it first"
    return f"cleared the deploy lock held by {whose} on {where} ({note})"
