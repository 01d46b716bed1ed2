"""Where commands run: this machine (``invoke.Context``) or a host over SSH (``fabric.Connection``).

Both share one interface, so no step knows which it has. Commands arrive as argv lists and this module is the
one place that turns them into a shell line (``shlex.join``), so every value is quoted for the remote shell.

Two kinds of command:
- ``run``: changes something. Under Invoke's ``--dry`` it is printed with its host and not executed.
- ``probe``: only reads state (inspect, ps, cat). It runs even under ``--dry`` so a dry run plans from the real
  state of the host, the way pyinfra gathers facts before printing operations.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from invoke import Context, Local

from . import signals
from .errors import CommandFailed


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Target(Protocol):
    name: str
    cwd: str
    dry: bool

    def run(self, argv: Sequence[str], *, check: bool = True, stream: bool = False,
            timeout: float | None = None) -> Result: ...

    def probe(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None) -> Result: ...

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None: ...

    def read_text(self, path: str) -> str | None: ...

    def tunnel(self, host: str, port: int) -> contextlib.AbstractContextManager[tuple[str, int]]: ...

    def close(self) -> None: ...


def command_line(argv: Sequence[str], cwd: str | None = None) -> str:
    """The single place where argv becomes shell text."""
    line = shlex.join(str(a) for a in argv)
    return f"cd {shlex.quote(cwd)} && {line}" if cwd else line


class _Base:
    """Shared run/probe/echo logic; subclasses supply the raw runner (a Context or a Connection)."""

    name = "local"
    cwd = "."

    def __init__(self, runner: Context, cwd: str, *, echo: bool = True, out=None):
        self._runner = runner
        self.cwd = cwd
        self.echo = echo
        self._out = out or sys.stderr

    @property
    def dry(self) -> bool:
        return bool(self._runner.config.run.dry)

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def run(self, argv: Sequence[str], *, check: bool = True, stream: bool = False,
            timeout: float | None = None) -> Result:
        argv = tuple(str(a) for a in argv)
        if self.dry:
            self.say(f"[dry-run] [{self.name}] {shlex.join(argv)}")
            return Result(argv, 0, "", "")
        if self.echo:
            self.say(f"[{self.name}] $ {shlex.join(argv)}")
        return self._exec(argv, check=check, stream=stream, timeout=timeout)

    def probe(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None) -> Result:
        return self._exec(tuple(str(a) for a in argv), check=check, stream=False, timeout=timeout)

    def _exec(self, argv: tuple[str, ...], *, check: bool, stream: bool, timeout: float | None) -> Result:
        marker = signals.mark()
        raw = self._raw_run(
            command_line(argv, self.cwd), hide=not stream, warn=True, dry=False, in_stream=False,
            timeout=timeout, **self._run_kwargs(),
        )
        signals.raise_if_swallowed(marker)  # Invoke waits for the command instead of raising; stop here
        result = Result(argv, raw.exited if raw.exited is not None else -1, raw.stdout, raw.stderr)
        if check and not result.ok:
            raise CommandFailed(argv, result.exit_status, result.stderr or result.stdout, where=self.name)
        return result

    def follow(self, argv: Sequence[str], write, *, timeout: float | None = None) -> Result:
        """A read-only command whose output goes to ``write(text)`` as it arrives (``logs --follow``).

        Like ``probe`` it runs under ``--dry``; stdout and stderr both go to ``write`` in arrival order.
        """
        stream = _WriteStream(write)
        argv = tuple(str(a) for a in argv)
        marker = signals.mark()
        raw = self._raw_run(command_line(argv, self.cwd), hide=False, warn=True, dry=False, in_stream=False,
                            out_stream=stream, err_stream=stream, timeout=timeout, **self._run_kwargs())
        signals.raise_if_swallowed(marker)
        return Result(argv, raw.exited if raw.exited is not None else -1, "", "")

    def _raw_run(self, line: str, **kwargs):
        return self._runner.run(line, **kwargs)

    def _run_kwargs(self) -> dict:
        return {}

    def read_text(self, path: str) -> str | None:
        result = self.probe(["cat", path])
        return result.stdout if result.ok else None

    def close(self) -> None:  # pragma: no cover - trivial for local
        pass


class _SignalForwardingLocal(Local):
    """Invoke's local runner, handing an interrupt on to the command as the signal we got.

    Invoke only writes ^C to the command's stdin, which a command without a terminal ignores: a SIGTERM sent to
    the deploy alone would wait for a whole build, and ``logs --follow`` would never end.
    """

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        signum = getattr(interrupt, "signum", None)
        process = getattr(self, "process", None)
        if signum is not None and process is not None and process.poll() is None:
            process.send_signal(signum)
        else:
            super().send_interrupt(interrupt)


class LocalTarget(_Base):
    """Runs on this machine through Invoke, so ``--dry`` and Invoke's run settings apply."""

    name = "local"

    def _raw_run(self, line: str, **kwargs):
        return _SignalForwardingLocal(self._runner).run(line, **kwargs)

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None:
        if self.dry:
            self.say(f"[dry-run] [{self.name}] write {path} ({len(text.encode())} bytes)")
            return
        import os
        from pathlib import Path

        full = Path(self.cwd, path)
        full.parent.mkdir(parents=True, exist_ok=True)
        tmp = full.with_name(full.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, full)

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        yield host, port


class SshTarget(_Base):
    """Runs on a host through one reused Fabric connection (commands, uploads and tunnels share it)."""

    def __init__(self, connection, cwd: str, *, echo: bool = True, out=None):
        super().__init__(connection, cwd, echo=echo, out=out)
        self.connection = connection
        self.name = f"{connection.user}@{connection.original_host}"

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None:
        full = path if path.startswith("/") else f"{self.cwd.rstrip('/')}/{path}"
        if self.dry:
            self.say(f"[dry-run] [{self.name}] write {full} ({len(text.encode())} bytes)")
            return
        self.connection.put(io.BytesIO(text.encode()), remote=full + ".tmp")
        self._exec(("chmod", format(mode, "o"), full + ".tmp"), check=True, stream=False, timeout=None)
        self._exec(("mv", "-f", full + ".tmp", full), check=True, stream=False, timeout=None)

    def put_file(self, local_path: str, remote_path: str) -> None:
        if self.dry:
            self.say(f"[dry-run] [{self.name}] upload {local_path} -> {remote_path}")
            return
        self.connection.put(local_path, remote=remote_path)

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        # Not Fabric's forward_local: it stops at the first refused connection (a container still booting).
        from .tunnel import forward

        self.connection.open()
        with forward(self.connection.transport, host, port) as local_port:
            yield "127.0.0.1", local_port

    def close(self) -> None:
        self.connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _WriteStream:
    """The file-like object Invoke writes output to, handing each chunk to a callable."""

    def __init__(self, write):
        self._write = write

    def write(self, text: str) -> None:
        self._write(text)

    def flush(self) -> None:
        pass
