"""Host checks that run before anything changes, beside the pipeline's own (engine, compose, compose file)."""

from __future__ import annotations

from droplet_deploy.commands import files
from droplet_deploy.session import Session
from droplet_deploy.steps.preflight import Item, parse_df_free_mb


def disk(session: Session) -> Item:
    """Free space where releases and images land (checked on the nearest existing parent before a first deploy)."""
    path, minimum = session.settings.host_dir, session.settings.min_free_mb
    free = parse_df_free_mb(session.target.probe(files.free_kib_nearest(path)).stdout)
    if free is None:
        return Item("free disk", False, f"cannot read free space of {path} on {session.where}")
    return Item("free disk", free >= minimum, f"{free} MB free at {path} (need {minimum} MB)")
