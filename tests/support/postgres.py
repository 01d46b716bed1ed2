"""A real PostgreSQL 15 in a container for tests: ``local/postgres:15`` (scripts/bootstrap builds it offline).

Usage::

    with postgres_volume() as volume, running_postgres(volume=volume) as pg:
        pg.psql("create table t (n int); insert into t values (1)")
        assert pg.psql("select n from t") == "1"

``running_postgres`` starts a container with a unique name (or the one given), optionally on a named volume and a
network, waits until the *final* server answers (``pg_isready`` on the socket, then a real ``select 1``; the
image's init phase runs its temporary server on a private socket, so neither can be fooled by it), and removes
the container (with its anonymous volumes) when the block ends, even after a failure. A named volume passed in
is the caller's and is kept: that is how a test recreates the container on the same data. ``postgres_volume``
and ``docker_network`` make such a volume or network with a unique name and remove it afterwards.

SQL runs through ``docker exec <name> psql`` as the configured user on the local socket, so the host needs no
PostgreSQL client. ``publish=True`` also publishes 5432 on ``127.0.0.1:<free port>`` (``handle.host_port``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE = os.environ.get("TEST_POSTGRES_IMAGE", "local/postgres:15")
START_TIMEOUT = 60.0
DOCKER_TIMEOUT = 120.0


def unique_name(prefix: str = "test-pg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ensure_postgres_available(image: str = IMAGE) -> str | None:
    """Return why the PostgreSQL image cannot run here, or None when it can.

    In CI (``CI`` set) scripts/bootstrap builds the image, so its absence is a broken machine: this raises
    instead of letting the tests skip.
    """
    result = _docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    if result.returncode == 0:
        return None
    reason = f"{image} is not built; scripts/bootstrap builds it offline"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}. CI must run the PostgreSQL tests, not skip them.")
    return reason


@dataclass(frozen=True, kw_only=True)
class PostgresHandle:
    """A running PostgreSQL container and what a client needs to reach it."""

    name: str
    image: str
    user: str
    password: str
    db: str
    volume: str | None
    network: str | None
    host_port: int | None

    def exec(self, *argv: str, input: bytes | None = None, check: bool = True,
             timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` in the container (as its user, postgres) and return the completed process."""
        flags = ["-i"] if input is not None else []
        result = subprocess.run(["docker", "exec", *flags, self.name, *argv], input=input, capture_output=True,
                                timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise PostgresError(f"`{' '.join(argv)}` in {self.name} exited {result.returncode}: "
                                f"{result.stderr.decode(errors='replace').strip()[-2000:]}")
        return result

    def psql(self, sql: str, *, db: str | None = None, check: bool = True) -> str:
        """Run ``sql`` (one or more statements) with psql; return the unaligned, tuples-only output, stripped.

        ``ON_ERROR_STOP`` is on, so a failing statement raises ``PostgresError`` (unless ``check=False``).
        """
        result = self.exec("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-U", self.user,
                           "-d", db or self.db, input=sql.encode(), check=check)
        return result.stdout.decode().strip()

    def dump(self, *, db: str | None = None) -> bytes:
        """``pg_dump --format=custom`` of ``db`` (default: the configured database), as bytes."""
        return self.exec("pg_dump", "--format=custom", "-U", self.user, "-d", db or self.db).stdout

    def restore(self, archive: bytes, *, db: str | None = None, options: Sequence[str] = ("--no-owner",)) -> None:
        """``pg_restore`` a custom-format ``archive`` into ``db``; any error fails (``--exit-on-error``)."""
        self.exec("pg_restore", "--exit-on-error", *options, "-U", self.user, "-d", db or self.db, input=archive)

    def url(self, host: str | None = None, port: int = 5432) -> str:
        """A libpq URL with the password, for clients on the same network (``host`` defaults to the name)."""
        return f"postgresql://{self.user}:{self.password}@{host or self.name}:{port}/{self.db}"

    def logs(self) -> str:
        result = _docker("logs", self.name, check=False)
        return result.stdout + result.stderr


class PostgresError(RuntimeError):
    pass


@contextlib.contextmanager
def postgres_volume(prefix: str = "test-pg-data") -> Iterator[str]:
    """A named volume with a unique name, removed when the block ends."""
    name = unique_name(prefix)
    _docker("volume", "create", name)
    try:
        yield name
    finally:
        _docker("volume", "rm", "-f", name, check=False)


@contextlib.contextmanager
def docker_network(prefix: str = "test-pg-net") -> Iterator[str]:
    """A user-defined bridge network with a unique name (containers on it reach each other by name)."""
    name = unique_name(prefix)
    _docker("network", "create", name)
    try:
        yield name
    finally:
        _docker("network", "rm", name, check=False)


@contextlib.contextmanager
def running_postgres(*, name: str | None = None, volume: str | None = None, network: str | None = None,
                     user: str = "app", password: str = "app-secret", db: str | None = None,
                     publish: bool = False, env: Mapping[str, str] | None = None,
                     init_files: Mapping[str, str | bytes | Path] | None = None, image: str = IMAGE,
                     timeout: float = START_TIMEOUT) -> Iterator[PostgresHandle]:
    """Start PostgreSQL, wait for the final server, yield its handle, remove the container on exit.

    ``init_files``: ``{"10-schema.sql": "create table ..."}`` goes into /docker-entrypoint-initdb.d before the
    first start (text, bytes or a host path); the image runs them on an empty data directory only.
    """
    handle = start_postgres(name=name, volume=volume, network=network, user=user, password=password, db=db,
                            publish=publish, env=env, init_files=init_files, image=image)
    try:
        wait_until_ready(handle, timeout=timeout)
        yield handle
    finally:
        remove_postgres(handle)


def start_postgres(*, name: str | None = None, volume: str | None = None, network: str | None = None,
                   user: str = "app", password: str = "app-secret", db: str | None = None, publish: bool = False,
                   env: Mapping[str, str] | None = None, init_files: Mapping[str, str | bytes | Path] | None = None,
                   image: str = IMAGE) -> PostgresHandle:
    """Create and start the container (no waiting); pair with ``wait_until_ready`` and ``remove_postgres``."""
    name = name or unique_name()
    db = db or user
    argv = ["create", "--name", name, "--label", "org.droplet-deploy.test=postgres",
            "-e", f"POSTGRES_USER={user}", "-e", f"POSTGRES_DB={db}"]
    if password:
        argv += ["-e", f"POSTGRES_PASSWORD={password}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    if volume:
        argv += ["-v", f"{volume}:/var/lib/postgresql/data"]
    if network:
        argv += ["--network", network]
    if publish:
        argv += ["-p", "127.0.0.1::5432"]  # the engine picks a free port: no race with other tests
    _docker(*argv, image)
    handle = PostgresHandle(name=name, image=image, user=user, password=password, db=db, volume=volume,
                            network=network, host_port=None)
    try:
        for filename, content in (init_files or {}).items():
            _copy_in(name, filename, content)
        _docker("start", name)
        if publish:
            port = _docker("port", name, "5432/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
            handle = dataclasses.replace(handle, host_port=int(port))
    except BaseException:
        remove_postgres(handle)
        raise
    return handle


def wait_until_ready(handle: PostgresHandle, *, timeout: float = START_TIMEOUT) -> float:
    """Wait until the final server accepts ``select 1``; return the seconds waited. Fails fast if it exits."""
    started = time.monotonic()
    deadline = started + timeout
    last = "not probed yet"
    while time.monotonic() < deadline:
        state = _docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", handle.name,
                        check=False).stdout.strip()
        if not state.startswith("running"):
            raise PostgresError(f"{handle.name} is {state or 'gone'} before it was ready\n{_tail(handle.logs())}")
        ready = handle.exec("pg_isready", "-q", "-U", handle.user, "-d", handle.db, check=False, timeout=10)
        if ready.returncode == 0:
            probe = handle.exec("psql", "-X", "-A", "-t", "-U", handle.user, "-d", handle.db, "-c", "select 1",
                                check=False, timeout=10)
            if probe.returncode == 0 and probe.stdout.strip() == b"1":
                return time.monotonic() - started
            last = f"select 1: {probe.stderr.decode(errors='replace').strip()}"
        else:
            last = f"pg_isready exited {ready.returncode}"
        time.sleep(0.2)
    raise PostgresError(f"{handle.name} did not answer `select 1` within {timeout:.0f}s (last: {last})\n"
                        f"{_tail(handle.logs())}")


def stop_postgres(handle: PostgresHandle, *, timeout: int = 30) -> None:
    """Stop the server cleanly (SIGINT, the image's STOPSIGNAL: a fast shutdown) without removing it."""
    _docker("stop", "-t", str(timeout), handle.name, check=False)


def remove_postgres(handle: PostgresHandle) -> None:
    """Remove the container and its anonymous volumes; a named volume stays (its owner removes it)."""
    _docker("rm", "-f", "-v", handle.name, check=False)


# --- internals --------------------------------------------------------------------------------------


def _docker(*argv: str, check: bool = True, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise PostgresError(f"docker {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _copy_in(container: str, filename: str, content: str | bytes | Path) -> None:
    """Put one init file into /docker-entrypoint-initdb.d of a created (not yet started) container."""
    if "/" in filename:
        raise ValueError(f"init file name must be a plain file name, not {filename!r}")
    data = content.read_bytes() if isinstance(content, Path) else (
        content.encode() if isinstance(content, str) else content)
    # A one-file tar on stdin: `docker cp -` keeps the name and a readable mode whatever the host's umask.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(filename)
        info.size, info.mode, info.mtime = len(data), 0o755 if filename.endswith(".sh") else 0o644, time.time()
        tar.addfile(info, io.BytesIO(data))
    result = subprocess.run(["docker", "cp", "-", f"{container}:/docker-entrypoint-initdb.d/"],
                            input=buffer.getvalue(), capture_output=True, timeout=DOCKER_TIMEOUT)
    if result.returncode != 0:
        raise PostgresError(f"docker cp {filename} into {container}: {result.stderr.decode(errors='replace')}")


def _tail(text: str, lines: int = 30) -> str:
    return "--- container log tail ---\n" + "\n".join(text.splitlines()[-lines:])
