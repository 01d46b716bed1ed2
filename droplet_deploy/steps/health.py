"""Wait until a service answers healthy *and* is proven to run the revision we deployed.

Two proofs, chosen per answer by the ``health_revision`` setting:

- the health body: ``{"status": "healthy", "revision": "<sha>"}``, the end-to-end check (``APP_REVISION`` in the
  container comes from the same build argument as the image label);
- the image label: a 2xx without a revision is accepted when the container that answered (the ``Witness``: the one
  polled on its own address, or the one the proxy's upstream names) carries ``org.opencontainers.image.revision``
  equal to the expected revision. That proves which container answers, which is what the body proves too.

``judge`` is the pure part (one answer in, verdict out); ``wait`` polls against a deadline, reports progress and,
when time runs out, says the last thing it saw. An answer that can never become valid (a 404, a redirect, a login,
a body without revision when the body is insisted on) ends the wait within seconds, with its fix.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from droplet_deploy.core.errors import HealthRejected, HealthTimeout

# What a health body's "status" may say when it means "up"; anything else ("starting", "degraded") keeps waiting.
HEALTHY_STATUSES = frozenset({"healthy", "ok", "pass", "up"})
# A never-valid answer must be seen this long, and this many times in a row, before the wait gives up on it. A
# service may answer oddly for a moment while it boots (a framework that listens before its routes are mounted
# answers 404, an auth middleware that loads its config late redirects), and one such answer must not fail a
# deploy that would have succeeded a second later.
SETTLE_SECONDS = 2.0
SETTLE_ANSWERS = 3
# A wait checks every FAST_INTERVAL for its first FAST_SECONDS, then every health_interval: most services are
# ready within seconds, and a deploy that notices it half an interval late waits for nothing. A refused connection
# costs the booting service next to nothing; a long boot is not polled twenty times a second throughout.
FAST_INTERVAL = 0.05
FAST_SECONDS = 10.0

BODY_FIX = ('report the revision in the health body, {"status": "healthy", "revision": "<APP_REVISION>"}, '
            "or set health_revision: auto to prove it by the image label")
PATH_FIX = "set health_path to a path the app answers with 2xx, e.g. /healthz or /up"
HOST_FIX = ("set deploy.health_host to a name the app accepts (Django: one in ALLOWED_HOSTS; probes send "
            "Host: localhost unless set), or let the app accept localhost")
OPEN_FIX = "point health_path at an endpoint that answers without a login or redirect"
LABEL_FIX = ("build with `inv build` (it sets the label), or give the Dockerfile `ARG REVISION` and "
             "`LABEL org.opencontainers.image.revision=$REVISION`")
WITNESS_FIX = ("report the revision in the health body, or check through the public port (no --url) so the image "
               "label of the container the proxy routes to proves it; `--revision any` accepts any healthy answer")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the health endpoint; ``status`` None when there was none (``body`` then says why)."""

    status: int | None
    body: str = ""
    location: str = ""  # where a redirect points


@dataclass(frozen=True)
class Witness:
    """The container an answer comes from, as far as the toolkit knows: its name and the revision its image's
    ``org.opencontainers.image.revision`` label carries."""

    name: str
    revision: str | None

    @classmethod
    def of(cls, container) -> Witness:
        return cls(container.name, container.revision)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    revision: str | None = None
    proof: str = ""  # "health body" | "image label of <container>" | "" (no revision asked for)
    final: bool = False  # the answer can never become valid: waiting longer will not change it
    fix: str = ""


def routed(containers: Sequence, upstream: str | None) -> Witness | None:
    """The witness for answers through the proxy: the container its upstream names, if that is one of
    ``containers`` (not the service name a first start writes, which any container may answer)."""
    chosen = next((c for c in containers if c.name == upstream), None) if upstream else None
    return Witness.of(chosen) if chosen is not None else None


def judge(answer: Answer, expected_revision: str | None, *, mode: str = "auto",
          witness: Witness | None = None) -> Verdict:
    """Decide whether one answer of the health endpoint means "deployed", and by which proof.

    ``mode`` is the setting health_revision (config.HEALTH_REVISION_MODES): ``body`` insists on the revision in
    the body, ``label`` on the image label of ``witness`` (a body that reports a revision must still agree),
    ``auto`` takes the body when it reports one and the label otherwise.
    """
    status = answer.status
    if status is None:
        return Verdict(False, answer.body or "no answer")
    never = _never_valid(answer)
    if never is not None:
        return never
    parsed = _parsed(answer.body)
    data = parsed if isinstance(parsed, dict) else None
    revision = _reported_revision(data)
    if not 200 <= status < 300 or not _says_healthy(data):
        return _not_healthy(answer, parsed, revision)
    if revision is not None:
        return _by_body(revision, expected_revision, mode, witness)
    if expected_revision is None:
        return Verdict(True, "healthy, revision not reported")
    if mode == "body":
        return Verdict(False, f"HTTP {status} without a revision in the body ({_shape(answer.body, data)}) "
                       "while health_revision is body", final=True, fix=BODY_FIX)
    return _by_label(f"HTTP {status} without a revision", expected_revision, witness)


def _never_valid(answer: Answer) -> Verdict | None:
    """Answers that no amount of waiting turns into a healthy one."""
    status = answer.status
    if status == 400:
        return Verdict(False, f"HTTP 400: the app refuses the request ({_clip(answer.body, 60)!r}), as a host check "
                       "does for a name it does not know", final=True, fix=HOST_FIX)
    if status == 404:
        return Verdict(False, f"HTTP 404: nothing at the health path ({_clip(answer.body, 60)!r})",
                       final=True, fix=PATH_FIX)
    if status in (401, 403):
        return Verdict(False, f"HTTP {status}: the health path asks for a login", final=True, fix=OPEN_FIX)
    if status is not None and 300 <= status < 400:
        where = f" to {_clip(answer.location, 80)}" if answer.location else ""
        return Verdict(False, f"HTTP {status}: the health path redirects{where}", final=True, fix=OPEN_FIX)
    return None


def _not_healthy(answer: Answer, parsed: object, revision: str | None) -> Verdict:
    """Up but not (yet) healthy, or an error answer: keep waiting, and say what was seen."""
    if parsed is _NOT_JSON:
        return Verdict(False, f"HTTP {answer.status}, body is not JSON: {_clip(answer.body)!r}", revision)
    if not isinstance(parsed, dict):
        return Verdict(False, f"HTTP {answer.status}, body is not a JSON object: {_clip(answer.body)!r}", revision)
    failing = _failing_checks(parsed)
    extra = f" (failing: {failing})" if failing else ""
    return Verdict(False, f"HTTP {answer.status}, status {parsed.get('status')!r}{extra}", revision)


def _by_body(revision: str, expected: str | None, mode: str, witness: Witness | None) -> Verdict:
    if expected is None:
        return Verdict(True, f"healthy at revision {revision[:12]}", revision)
    if revision != expected:
        return Verdict(False, f"still serving revision {revision[:12]}, expected {expected[:12]}", revision)
    if mode == "label":
        # The label is what this mode insists on; the body agreeing is checked above and is not enough alone.
        return _by_label("healthy", expected, witness)
    return Verdict(True, f"healthy at revision {revision[:12]} (proven by health body)", revision, "health body")


def _by_label(seen: str, expected: str, witness: Witness | None) -> Verdict:
    if witness is None:
        return Verdict(False, f"{seen}, and no container known to read the image label of: "
                       f"cannot prove revision {expected[:12]}", final=True, fix=WITNESS_FIX)
    if witness.revision is None:
        return Verdict(False, f"{seen}, and the image of {witness.name} has no revision label",
                       final=True, fix=LABEL_FIX)
    if witness.revision != expected:
        # Like a body reporting another revision: that container is not (yet) the one we wait for.
        return Verdict(False, f"image label of {witness.name} says revision {witness.revision[:12]}, "
                       f"expected {expected[:12]}", witness.revision)
    return Verdict(True, f"healthy at revision {expected[:12]} (proven by image label of {witness.name})",
                   expected, f"image label of {witness.name}")


_NOT_JSON = object()


def _parsed(body: str) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _reported_revision(data: dict | None) -> str | None:
    value = data.get("revision") if data is not None else None
    return str(value) if value is not None else None


def _says_healthy(data: dict | None) -> bool:
    """A body without a status field leaves health to the HTTP status; one with it must say it is up."""
    if data is None or "status" not in data:
        return True
    return str(data["status"]).lower() in HEALTHY_STATUSES


def _shape(body: str, data: dict | None) -> str:
    if data is not None:
        return "JSON without revision"
    return f"{_clip(body, 40)!r}" if body.strip() else "empty body"


def _failing_checks(data: dict) -> str:
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return ""
    bad = [name for name, value in checks.items()
           if isinstance(value, dict) and value.get("status") not in (None, "ok", "healthy", "pass")]
    return ", ".join(sorted(bad))


# The most of a health body read: enough for any real one, bounded for an endpoint that streams.
MAX_BODY = 1 << 20


class _ByName(http.client.HTTPSConnection):
    """HTTPS to the URL's address with another name for SNI and the Host header: a front proxy routing by name.

    The chain is not verified: what is proven is the route (this name reaches the revision), and a private or test
    CA's root is not in this machine's trust store; whether the name's certificate is valid is the CA's business.
    """

    def __init__(self, address: str, port: int | None, name: str, timeout: float):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(address, port, timeout=timeout, context=context)
        self._name, self._tls = name, context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self._name)


def _connection(url: str, timeout: float, host: str | None) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https" and host:
        return _ByName(parts.hostname or "", parts.port, host, timeout), path
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname or "", parts.port, timeout=timeout), path


def probe(url: str, timeout: float, host: str | None = None) -> Answer:
    """One GET on a new connection, redirects not followed (a redirect is an answer to judge). Connection problems
    become an ``Answer`` without status so the poller can keep going.

    The standard library's client, not a session library: a poll every 0.05 s pays for nothing it does not use,
    and a proxy configured in the environment (HTTP_PROXY) must never stand between us and a container.
    """
    try:
        connection, path = _connection(url, timeout, host)
    except ValueError as exc:  # a port out of range
        return Answer(None, f"request failed: {exc}")
    # ``host``: the name the request is addressed to (a name the app accepts, or the one a front proxy routes on);
    # without it http.client sends the address, which host-checking apps refuse with 400.
    headers = {"Cache-Control": "no-cache", "Connection": "close", **({"Host": host} if host else {})}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read(MAX_BODY)
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        # Reset or closed before an answer: what a container that is still starting (or a tunnel to one) does.
        return Answer(None, "connection refused")
    except TimeoutError:
        return Answer(None, f"no answer within {timeout:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, f"request failed: {type(exc).__name__}")
    finally:
        connection.close()
    return Answer(response.status, _decoded(body, response.headers.get_content_charset()),
                  response.getheader("Location") or "")


def _decoded(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def pause(elapsed: float, interval: float) -> float:
    """How long to wait before the next check, ``elapsed`` seconds into a wait: every FAST_INTERVAL at first, so
    a service that becomes ready is seen within a tenth of a second, then every ``interval``."""
    return min(interval, FAST_INTERVAL) if elapsed < FAST_SECONDS else interval


def wait(url: str, expected_revision: str | None, *, timeout: float, interval: float = 0.5,
         mode: str = "auto", witness: Witness | None = None, settle: float = SETTLE_SECONDS,
         progress: Callable[[str], None] | None = None, host: str | None = None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Poll ``url`` until healthy and proven at ``expected_revision``.

    Raises ``HealthRejected`` once never-valid answers have held for ``settle`` seconds and ``SETTLE_ANSWERS``
    answers in a row (or one is the last seen at the deadline), else ``HealthTimeout`` with the last state seen.
    """
    started = clock()
    deadline = started + timeout
    last: Verdict | None = None
    attempts = 0
    streak = _Streak()
    while True:
        attempts += 1
        remaining = deadline - clock()
        verdict = judge(probe(url, timeout=max(0.2, min(5.0, remaining)), host=host), expected_revision,
                        mode=mode, witness=witness)
        if verdict.ok:
            if progress:
                progress(f"{url}: {verdict.reason} after {attempts} check(s)")
            return verdict
        if progress and (last is None or verdict.reason != last.reason):
            progress(f"{url}: {verdict.reason}; waiting (up to {max(0.0, deadline - clock()):.0f}s left)")
        last = verdict
        held = streak.see(verdict, clock())
        wait_for = pause(clock() - started, interval)
        out_of_time = clock() + wait_for > deadline
        if verdict.final and (out_of_time or (held >= settle and streak.count >= SETTLE_ANSWERS)):
            raise HealthRejected(url, verdict.reason, verdict.fix, held)
        if out_of_time:
            raise HealthTimeout(url, timeout, last.reason)
        sleep(wait_for)


@dataclass
class _Streak:
    """Never-valid answers seen in a row: how many, and since when. Any other answer ends the streak."""

    since: float | None = None
    count: int = 0

    def see(self, verdict: Verdict, now: float) -> float:
        """Count ``verdict``; return for how long the streak has held."""
        if not verdict.final:
            self.since, self.count = None, 0
            return 0.0
        self.since = now if self.since is None else self.since
        self.count += 1
        return now - self.since


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
