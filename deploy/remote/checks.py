"""Host checks that run before anything changes, beside the pipeline's own (engine, compose, compose file)."""

from __future__ import annotations

from collections.abc import Callable

from ..commands import release as cmd
from ..preflight import Item, parse_df_free_mb
from ..session import Session, remote_dir
from .release import env_file_check


def preflight_checks(session: Session) -> list[Callable[[], Item]]:
    checks: list[Callable[[], Item]] = [lambda: disk(session)]
    if session.settings.env_file:
        checks.append(lambda: env_file_check(session.target, session.settings))
    return checks


def disk(session: Session) -> Item:
    """Free space where releases and images land (checked on the nearest existing parent before a first deploy)."""
    path, minimum = remote_dir(session.settings), session.settings.min_free_mb
    free = parse_df_free_mb(session.target.probe(cmd.free_kib_nearest(path)).stdout)
    if free is None:
        return Item("free disk", False, f"cannot read free space of {path} on {session.where}")
    return Item("free disk", free >= minimum, f"{free} MB free at {path} (need {minimum} MB)")
