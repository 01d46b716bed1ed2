"""Whether the site comes back by itself when the host reboots. Pure: no I/O.

The engine starts again only the containers whose restart policy says so: ``always`` and ``unless-stopped``
(not one somebody stopped). ``on-failure`` and ``no`` leave them down, and so does no policy at all. The site is
the app and the proxy in front of it; either one down after a reboot is an outage until someone deploys.
"""

from __future__ import annotations

from collections.abc import Mapping

from droplet_deploy.engines.compose import compose_file

COMES_BACK = ("always", "unless-stopped")


def comes_back(policy: str | None) -> bool:
    return policy is not None and policy.strip().strip("'\"") in COMES_BACK


def stays_down(doc: Mapping, app: str, proxy: str, *, proxy_added: bool) -> list[str]:
    """The site's services a reboot leaves down. The proxy the toolkit adds takes the app's policy
    (override.proxy_service), so then only the app is named."""
    found = compose_file.services(doc)
    names = [app] if proxy_added or proxy not in found else [app, proxy]
    return [name for name in names if not comes_back(_policy(found.get(name, {})))]


def note(doc: Mapping, app: str, proxy: str, *, proxy_added: bool) -> str | None:
    """One line for the preflight when a reboot would take the site down; None when it comes back."""
    down = stays_down(doc, app, proxy, proxy_added=proxy_added)
    if not down:
        return None
    return (f"after a reboot {' and '.join(down)} stay{'s' if len(down) == 1 else ''} down "
            f"(restart policy not always/unless-stopped): set `restart: unless-stopped` on {', '.join(down)}")


def _policy(spec: Mapping) -> str | None:
    value = spec.get("restart")
    return str(value) if value else None
