"""Whether the SSH link to a host still answers, checked beside the deploy.

A killed session or a closed TCP connection ends the transport at once; a half-open one (a NAT that forgot the
connection, a host that froze, a pulled cable) gives no error until TCP gives up retransmitting, many minutes
later, while every read on it waits. So every ``EVERY`` seconds a channel is opened and closed, which the host
must answer: no answer within ``answer_within`` seconds (or a transport that ended) is a lost link. The transport
is then closed, so whatever waits on it ends, and ``on_lost`` is told why. A lost link is noticed within
``EVERY + answer_within`` seconds (20 by default, see docs/configuration.md, ``link_timeout``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


class LinkWatch:
    EVERY = 5.0

    def __init__(self, transport, *, answer_within: float, on_lost: Callable[[str], None]):
        self.transport, self.answer_within, self.on_lost = transport, answer_within, on_lost
        self.lost = ""  # why the link counts as lost; "" while it answers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ssh-link-watch", daemon=True)

    def start(self) -> LinkWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.EVERY):
            why = self.check()
            if why and not self._stop.is_set():
                self.lost = why
                with contextlib.suppress(Exception):
                    self.transport.close()
                self.on_lost(why)
                return

    def check(self) -> str:
        """"" when the host answered, else why the link counts as lost."""
        if not self.transport.is_active():
            return "the connection closed"
        answered = threading.Event()

        # Here, not at the top: a local deploy never loads paramiko (a tenth of a second at start-up).
        from paramiko import ChannelException

        def ask() -> None:
            # In a thread of its own: a write into a full send buffer of a dead connection blocks, too.
            try:
                self.transport.open_session(timeout=self.answer_within).close()
            except ChannelException:
                pass  # refused (MaxSessions reached): an answer all the same
            except Exception:  # noqa: BLE001 - no answer, or the transport ended: the caller tells which
                return
            answered.set()

        threading.Thread(target=ask, name="ssh-link-check", daemon=True).start()
        if answered.wait(self.answer_within):
            return ""
        if not self.transport.is_active():
            return "the connection closed"
        return f"the host did not answer within {self.answer_within:g}s"
