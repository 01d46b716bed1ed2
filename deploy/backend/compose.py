"""Compose on this machine: the stack runs where ``inv`` runs, built straight from the work tree."""

from __future__ import annotations

from invoke import Context

from .. import images, preflight
from ..adopt import release as adopt
from ..config import Settings
from ..rollout import Outcome, rollout
from ..session import Session
from ..state import Snapshot
from ..target import LocalTarget
from .base import Backend, Check


class ComposeBackend(Backend):
    name = "compose"

    @classmethod
    def open(cls, c: Context, settings: Settings, local: LocalTarget) -> Session:
        return cls(Session(settings, local, local)).session

    def preflight(self, image: str) -> list[list[Check]]:
        stack = self.session.stack
        return [
            [lambda: preflight.engine(stack), lambda: preflight.compose(stack)],
            [
                # Writes this release's compose override (or removes a stale one): the file check sees it.
                preflight.in_order(lambda: adopt.prepare(self.session, image),
                                   lambda: preflight.compose_file(stack, image)),
                *self.host_checks(),
            ],
        ]

    def host_checks(self) -> list[Check]:
        # Only checkable from here for a local stack; a host's port is its own business.
        return [lambda: preflight.public_port(self.session.settings, self.snapshot())]

    def snapshot(self) -> Snapshot:
        return self.session.stack.snapshot()

    def rollout(self, image: str, revision: str, *, timeout: float | None) -> Outcome:
        return rollout(self.session.stack, image, revision, say=self.session.ui.note, health_timeout=timeout)

    def prune_images(self, keep: set[str]) -> list[str]:
        session = self.session
        return images.prune(session.target, session.settings, keep) if not session.target.dry else []
