"""Where commands run: this machine (``invoke.Context``) or a host over SSH (``fabric.Connection``).

Both share one interface, so no step knows which it has. Commands arrive as argv lists and this module is the
one place that turns them into a shell line (``shlex.join``), so every value is quoted for the remote shell.
What is printed of a command (echo and ``--dry`` lines) goes through ``redact.display``: credentials masked.

What a person sees: by default nothing of a command but its failure (the command line and the tail of its output,
``FAILED_TAIL`` lines). Verbose (``echo``: ``--verbose``, ``DEPLOY_VERBOSE=1`` or Invoke's ``--echo``) echoes every
command as ``[<target>] $ ...`` and shows the output of streamed ones (the docker build log) as it arrives.

Two kinds of command:
- ``run``: changes something. Under Invoke's ``--dry`` it is printed with its host and not executed.
- ``probe``: only reads state (inspect, ps, cat). It runs even under ``--dry`` so a dry run plans from the real
  state of the host, the way pyinfra gathers facts before printing operations.

Files travel over the same connection as commands: their bytes are streamed through an exec channel (``cat``),
never SFTP, because hardened hosts often run sshd without an SFTP subsystem.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import io
import os
import re
import select
import shlex
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from invoke import Context, Local
from invoke.exceptions import CommandTimedOut

from droplet_deploy.commands import files
from droplet_deploy.core import signals
from droplet_deploy.core.errors import CommandFailed, LinkLost
from droplet_deploy.core.redact import clean, display, scrub, secrets_in
from droplet_deploy.transport.link import LinkWatch
from droplet_deploy.transport.relay import ChannelStream, Conn, ProcessStream, Stream, local_connect

CHUNK = 1 << 16
# How long stopping an interrupted deploy's processes on a host may take (SIGTERM, then SIGKILL after 10 s).
STOP_WAIT = 15.0
# Lines of a failed command's output shown when its output was not shown as it ran.
FAILED_TAIL = 20


@dataclass(frozen=True)
class Bounds:
    """How long one command may run when its caller gives no bound of its own, by kind: a plain command, a
    streamed one (an image build) and a watched one (a pre_switch hook such as a migration, ``deploy.exec``).
    Nothing waits forever: a stuck disk or a hung command ends the step with one line."""

    command: float = 900.0
    build: float = 3600.0
    watched: float = 3600.0

    def of(self, *, stream: bool, watched: bool) -> float:
        return self.watched if watched else self.build if stream else self.command


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
    echo: bool  # echo each command, and show streamed output as it arrives (verbose)
    bounds: Bounds  # how long a command may run when the caller gives no timeout
    before_change: Callable[[], None] | None  # the lock's fence, asked before every change
    tag: str  # marks the commands of the deploy holding the lock, to stop what is left of it

    @property
    def dry(self) -> bool:
        """Invoke's ``--dry``: changes are printed, not made; probes still run."""

    def say(self, text: str) -> None: ...

    def run(self, argv: Sequence[str], *, check: bool = True, stream: bool = False,
            timeout: float | None = None, shown: str | None = None, watched: bool = False,
            does: str | None = None, progress: Callable[[str], None] | None = None) -> Result:
        """Change something. ``stream``: output worth watching (a build), shown when verbose; ``watched``: output
        that is what the user asked for (``deploy.exec``, hooks), always shown; ``shown``: how the command is
        echoed (a constant script by name) where not its full text; ``does``: what it does in words, the line a dry
        run prints for plumbing (``take the deploy lock``); ``progress``: each line of a streamed command's output,
        while it is not shown (a terminal's live line)."""

    def probe(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None) -> Result: ...

    def follow(self, argv: Sequence[str], write: Callable[[str], None], *, timeout: float | None = None) -> Result:
        """A read-only command whose output goes to ``write`` as it arrives (``logs --follow``)."""

    def interact(self, argv: Sequence[str]) -> int:
        """Run a command with the user's terminal attached (a pty, stdin passed on); returns its exit status."""

    def write_text(self, path: str, text: str, mode: int = 0o600) -> None: ...

    def read_text(self, path: str) -> str | None: ...

    def put_file(self, local_path: str, path: str, mode: int = 0o600) -> None:
        """Copy a file of this machine to ``path`` on the target, atomically, with ``mode``."""

    def get_file(self, path: str, local_path: str, mode: int = 0o600) -> None:
        """Copy ``path`` on the target to a new file ``local_path`` created with ``mode``; an existing
        ``local_path`` is never overwritten (FileExistsError). Reads only, so it runs under ``--dry`` too."""

    def tunnel(self, host: str, port: int) -> contextlib.AbstractContextManager[tuple[str, int]]: ...

    def duplex(self, argv: Sequence[str], *, shown: str | None = None) -> Stream:
        """Start a command on the target with its stdin and stdout as one byte stream (the image relay's node end,
        reached from there); the caller closes it."""

    def connect(self, host: str, port: int) -> Conn:
        """A TCP connection to an address the target reaches (its own 127.0.0.1), carried from here."""

    def close(self) -> None: ...


def out_of_time(timeout: float) -> str:
    """What a command stopped at its deadline has to say, wherever it ran."""
    return f"no answer within {timeout:g}s; the command was stopped"


def command_line(argv: Sequence[str], cwd: str | None = None) -> str:
    """The single place where argv becomes shell text."""
    line = shlex.join(str(a) for a in argv)
    return f"cd {shlex.quote(cwd)} && {line}" if cwd else line


class _Base:
    """Shared run/probe/echo logic; subclasses supply the raw runner (a Context or a Connection)."""

    name = "local"
    cwd = "."
    tag = ""  # over SSH: the mark of every command on the host (files.RUN_TAG); nothing locally

    def __init__(self, runner: Context, cwd: str, *, echo: bool = True, out=None):
        self._runner = runner
        self.cwd = cwd
        self.echo = echo
        self._out = out or sys.stderr
        self.bounds = Bounds()
        # Asked before every change (not before a probe): the deploy lock's fence, which refuses a change once
        # the lock is no longer ours.
        self.before_change: Callable[[], None] | None = None

    @property
    def dry(self) -> bool:
        return bool(self._runner.config.run.dry)

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def run(self, argv: Sequence[str], *, check: bool = True, stream: bool = False,
            timeout: float | None = None, shown: str | None = None, watched: bool = False,
            does: str | None = None, progress: Callable[[str], None] | None = None) -> Result:
        argv = tuple(str(a) for a in argv)
        if timeout is None:
            timeout = self.bounds.of(stream=stream, watched=watched)
        stream = stream or watched
        if self._only_planned(argv, does):
            return Result(argv, 0, "", "")
        line = f"[{self.name}] $ {shown or display(argv)}"
        if self.echo:
            self.say(line)
        # Kept for the failure report, not shown: a quiet run's build log.
        shown_live = (lambda text: progress(clean(text, argv))) if progress else None
        tail = _Tail(on_line=shown_live) if stream and not (self.echo or watched) else None
        result = self._exec(argv, check=False, stream=stream, timeout=timeout, tail=tail)
        if check and not result.ok:
            self._report_failure(line, result, streamed=stream and tail is None, tail=tail)
            raise CommandFailed(argv, result.exit_status, result.stderr or result.stdout, where=self.name)
        return result

    def _only_planned(self, argv: tuple[str, ...], does: str | None) -> bool:
        """A dry run prints the change instead; a real one asks the fence first (which may refuse it)."""
        if self.dry:
            self.say(f"[dry-run] [{self.name}] {does or display(argv)}")
            return True
        if self.before_change is not None:
            self.before_change()
        return False

    def probe(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None) -> Result:
        bound = self.bounds.command if timeout is None else timeout
        return self._exec(tuple(str(a) for a in argv), check=check, stream=False, timeout=bound)

    def interact(self, argv: Sequence[str]) -> int:
        """A command for a person at a terminal (a shell in a container): a pty, their keystrokes passed on, Ctrl-C
        included, which goes to the command as it would in a terminal and does not stop the task."""
        argv = tuple(str(a) for a in argv)
        if self.dry:
            self.say(f"[dry-run] [{self.name}] {display(argv)}")
            return 0
        if self.echo:
            self.say(f"[{self.name}] $ {display(argv)}")
        raw = self._raw_run(command_line(argv, self.cwd), pty=True, hide=False, warn=True, dry=False, echo=False,
                            **self._run_kwargs())
        return raw.exited if raw.exited is not None else -1

    def _report_failure(self, line: str, result: Result, *, streamed: bool, tail: _Tail | None) -> None:
        """A failed change: the command (unless echoed already) and the end of its output (unless shown)."""
        if not self.echo:
            self.say(f"{line}  (failed, exit {result.exit_status})")
        if streamed:
            return  # its output went by as it ran
        output = tail.text() if tail is not None else (result.stderr or result.stdout)
        lines = [text for text in clean(output, result.argv).splitlines() if text.strip()]
        for text in lines[-FAILED_TAIL:]:
            self.say(f"    | {text}")

    def _exec(self, argv: tuple[str, ...], *, check: bool, stream: bool, timeout: float | None,
              tail: _Tail | None = None) -> Result:
        # echo=False: this class echoes (masked); Invoke's own echo (`inv --echo`) would print the raw line.
        streams = _output_streams(argv, stream, tail)
        marker = signals.mark()
        late = ""
        try:
            raw = self._raw_run(
                command_line(argv, self.cwd), hide=not stream, warn=True, dry=False, echo=False, in_stream=False,
                timeout=timeout, **streams, **self._run_kwargs(),
            )
        except CommandTimedOut as exc:
            self._after_loss()
            # Invoke has stopped it. Its own message quotes the raw command line: the result says it instead,
            # as the SSH shell's does, and is masked like any failure.
            raw, late = exc.result, "\n" + out_of_time(exc.timeout)
        finally:
            for opened in streams.values():
                opened.close()
        signals.raise_if_swallowed(marker)  # Invoke waits for the command instead of raising; stop here
        self._after_loss()
        exited = -1 if late or raw.exited is None else raw.exited
        result = Result(argv, exited, raw.stdout, raw.stderr + late)
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
        raw = self._raw_run(command_line(argv, self.cwd), hide=False, warn=True, dry=False, echo=False,
                            in_stream=False, out_stream=stream, err_stream=stream, timeout=timeout,
                            **self._run_kwargs())
        signals.raise_if_swallowed(marker)
        return Result(argv, raw.exited if raw.exited is not None else -1, "", "")

    def _raw_run(self, line: str, **kwargs):
        return self._runner.run(line, **kwargs)

    def _run_kwargs(self) -> dict:
        return {}

    def _after_loss(self) -> None:
        """Raise ``LinkLost`` when the way to the target is gone (over SSH); nothing to lose locally."""

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

    def kill(self) -> None:
        """At a timeout: the shell and everything it started. Invoke kills the shell alone, and a command it
        started (``sleep`` in ``sh -c``) keeps the output pipes open, so the run would still wait for it."""
        process = getattr(self, "process", None)
        if process is not None:
            for pid in _descendants(process.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        super().kill()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (none where there is no /proc: there only the shell is stopped)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The name in parentheses may hold spaces and ')': the fields after the last ')' are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


class LocalTarget(_Base):
    """Runs on this machine through Invoke, so ``--dry`` and Invoke's run settings apply."""

    name = "local"

    def _raw_run(self, line: str, **kwargs):
        return _SignalForwardingLocal(self._runner).run(line, **kwargs)

    def write_text(self, path: str, text: str, mode: int = 0o600) -> None:
        if self.dry:
            self.say(f"[dry-run] [{self.name}] write {path} ({len(text.encode())} bytes)")
            return
        self._replace(path, mode, lambda sink: sink.write(text.encode()))

    def put_file(self, local_path: str, path: str, mode: int = 0o600) -> None:
        if self.dry:
            self.say(f"[dry-run] [{self.name}] copy {local_path} -> {path}")
            return
        with open(local_path, "rb") as source:
            self._replace(path, mode, lambda sink: shutil.copyfileobj(source, sink, CHUNK))

    def get_file(self, path: str, local_path: str, mode: int = 0o600) -> None:
        with open(Path(self.cwd, path), "rb") as source:
            write_new(local_path, mode, lambda sink: shutil.copyfileobj(source, sink, CHUNK))

    def _replace(self, path: str, mode: int, fill) -> None:
        full = Path(self.cwd, path)
        full.parent.mkdir(parents=True, exist_ok=True)
        tmp = full.with_name(full.name + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as sink:
            fill(sink)
        os.chmod(tmp, mode)
        os.replace(tmp, full)

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        yield host, port

    def duplex(self, argv: Sequence[str], *, shown: str | None = None) -> Stream:
        if self.echo:
            self.say(f"[{self.name}] $ {shown or command_line(argv)}")
        return ProcessStream(argv, cwd=self.cwd)

    def connect(self, host: str, port: int) -> Conn:
        return local_connect(host, port)


class SshTarget(_Base):
    """Runs on a host through one reused Fabric connection (commands, uploads and tunnels share it).

    Commands run one after another in one shell on the connection (``_Shell``), a streamed one (a build) with its
    output shown as it arrives, also when several threads send them (preflight's checks): one waits for the other,
    which costs less than a session each. A command that would wait longer than ``SHELL_WAIT`` (the lock's
    heartbeat during a build or a long drain must not wait for it) gets a session of its own through Fabric.
    """

    SHELL_WAIT = 1.0

    def __init__(self, connection, cwd: str, *, echo: bool = True, out=None):
        super().__init__(connection, cwd, echo=echo, out=out)
        self.connection = connection
        self.name = f"{connection.user}@{connection.original_host}"
        self._shell: _Shell | None = None
        self._shell_free = threading.Lock()
        self._watch: LinkWatch | None = None
        self.tag = ""  # marks every command on the host (the deploy's lock token): see files.RUN_TAG

    def watch_link(self, answer_within: float) -> None:
        """Keepalive on, and the link checked from now on: a lost one is noticed within ``answer_within`` plus
        ``LinkWatch.EVERY`` seconds, and raised as ``LinkLost`` in the main thread (``signals.raise_in_main``)."""
        transport = self.connection.transport
        transport.set_keepalive(int(LinkWatch.EVERY))
        self._watch = LinkWatch(transport, answer_within=answer_within, on_lost=self._lost).start()

    def _lost(self, why: str) -> None:
        signals.raise_in_main(self.link_lost(why))

    def link_lost(self, why: str) -> LinkLost:
        return LinkLost(self.connection.original_host, why)

    def _after_loss(self) -> None:
        """Once the link is gone nothing more is sent (Fabric would log in again for the next command: a deploy
        that lost its link stops where it is, and the next deploy takes its abandoned lock over)."""
        watch = self._watch
        if watch is not None and watch.lost:
            raise self.link_lost(watch.lost)
        transport = self.connection.transport
        if watch is not None and (transport is None or not transport.is_active()):
            watch.lost = "the connection closed"
            raise self.link_lost(watch.lost)

    def _exec(self, argv: tuple[str, ...], *, check: bool, stream: bool, timeout: float | None,
              tail: _Tail | None = None) -> Result:
        self._after_loss()
        if not self._shell_free.acquire(timeout=self.SHELL_WAIT):
            return super()._exec(argv, check=check, stream=stream, timeout=timeout, tail=tail)
        streams = _output_streams(argv, stream, tail)
        try:
            shown = (streams.get("out_stream", sys.stdout), streams.get("err_stream", sys.stderr)) if stream else None
            result = self._in_shell(argv, timeout, shown)
        finally:
            self._shell_free.release()
            for masked in streams.values():
                masked.close()
        if check and not result.ok:
            raise CommandFailed(argv, result.exit_status, result.stderr or result.stdout, where=self.name)
        return result

    def _in_shell(self, argv: tuple[str, ...], timeout: float | None, shown: tuple | None) -> Result:
        try:
            if self._shell is None:
                self.connection.open()
                self._shell = _Shell(self.connection.transport)
            status, stdout, stderr = self._shell.run(command_line(argv, self.cwd), timeout, shown, self.tag)
        except _ShellLost as exc:
            self._drop_shell()
            self._after_loss()
            self._stop_tagged()  # a command that ran out of time is stopped on the host, not only abandoned
            return Result(argv, -1, "", str(exc))
        except BaseException:
            # Interrupted mid-command: the channel is closed, and since a channel without a terminal sends the
            # host no signal, what the command started is stopped there too (a migration, a compose up).
            self._drop_shell()
            self._stop_tagged()
            raise
        return Result(argv, status, stdout, stderr)

    def _stop_tagged(self) -> None:
        """Stop the processes this deploy's commands started on the host (over a channel of its own, bounded)."""
        watch = self._watch
        if not self.tag or (watch is not None and watch.lost):
            return
        with signals.shielded(), contextlib.suppress(Exception):
            channel = self._channel(files.stop_tagged(self.tag))
            channel.settimeout(STOP_WAIT)
            try:
                channel.status_event.wait(STOP_WAIT)
            finally:
                channel.close()

    def _drop_shell(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def write_text(self, path: str, text: str, mode: int = 0o600) -> None:
        full = self._absolute(path)
        if self.dry:
            self.say(f"[dry-run] [{self.name}] write {full} ({len(text.encode())} bytes)")
            return
        data = text.encode()
        self._stream_in(io.BytesIO(data), full, mode, len(data))

    def put_file(self, local_path: str, path: str, mode: int = 0o600) -> None:
        full = self._absolute(path)
        if self.dry:
            self.say(f"[dry-run] [{self.name}] upload {local_path} -> {full}")
            return
        with open(local_path, "rb") as source:
            self._stream_in(source, full, mode, os.fstat(source.fileno()).st_size)

    def get_file(self, path: str, local_path: str, mode: int = 0o600) -> None:
        write_new(local_path, mode, lambda sink: self._stream_out(self._absolute(path), sink))

    def _absolute(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.cwd.rstrip('/')}/{path}"

    def _channel(self, argv: Sequence[str]):
        """A new exec channel on the task's one connection (no second login, no SFTP subsystem needed); each
        read, write and the wait for its exit status are bounded by ``bounds.command``."""
        self._after_loss()
        self.connection.open()
        channel = self.connection.transport.open_session(timeout=self.bounds.command)
        channel.settimeout(self.bounds.command)
        channel.exec_command(command_line(argv))
        return channel

    def _stream_in(self, source: BinaryIO, path: str, mode: int, size: int) -> None:
        argv = tuple(files.receive(path, mode, size))
        channel = self._channel(argv)
        try:
            try:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    channel.sendall(chunk)
                channel.shutdown_write()
            except TimeoutError:
                self._after_loss()
                raise CommandFailed(argv, -1, out_of_time(self.bounds.command), where=self.name) from None
            except OSError:
                pass  # the host closed its end early (cannot write there): its exit status and stderr say why
            self._finish(channel, argv)
        finally:
            channel.close()

    def _stream_out(self, path: str, sink: BinaryIO) -> None:
        argv = tuple(files.send(path))
        channel = self._channel(argv)
        try:
            try:
                for chunk in iter(lambda: channel.recv(CHUNK), b""):
                    sink.write(chunk)
            except TimeoutError:
                self._after_loss()
                raise CommandFailed(argv, -1, out_of_time(self.bounds.command), where=self.name) from None
            self._finish(channel, argv)
        finally:
            channel.close()

    def _finish(self, channel, argv: tuple[str, ...]) -> None:
        if not channel.status_event.wait(self.bounds.command):
            self._after_loss()
            raise CommandFailed(argv, -1, out_of_time(self.bounds.command), where=self.name)
        self._after_loss()  # a closed link also ends the wait, with no status to read
        status = channel.recv_exit_status()
        if status != 0:
            stderr = b"".join(iter(lambda: channel.recv_stderr(CHUNK), b"")).decode(errors="replace")
            raise CommandFailed(argv, status, stderr, where=self.name)

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        # Not Fabric's forward_local: it stops at the first refused connection (a container still booting).
        from droplet_deploy.transport.tunnel import forward

        self._after_loss()
        self.connection.open()
        with forward(self.connection.transport, host, port) as local_port:
            yield "127.0.0.1", local_port

    def duplex(self, argv: Sequence[str], *, shown: str | None = None) -> Stream:
        if self.echo:
            self.say(f"[{self.name}] $ {shown or command_line(argv)}")
        return ChannelStream(self._channel(argv))

    def connect(self, host: str, port: int) -> Conn:
        self.connection.open()
        return self.connection.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=10)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        self._drop_shell()
        self.connection.close()


class _ShellLost(Exception):
    """The shell did not answer in time, or went away; the message says which."""


class _Shell:
    """One ``sh`` on one exec channel, running commands sent to its stdin one at a time.

    Each SSH session starts the user's login shell, which on many hosts reads rc files (a version manager's init
    alone can take a third of a second): paid once here instead of once per command. Each command runs in a
    subshell with stdin from /dev/null (it cannot read the commands that follow, nor change the shell's
    directory), then the shell prints a line with a marker unique to the command and its exit status on stdout,
    and the marker alone on stderr: both streams are read up to those lines, so any output is carried whole.
    """

    WRAP = "( {env}{line} ) </dev/null; printf '\\n%s %s\\n' {marker} \"$?\"; printf '\\n%s\\n' {marker} >&2\n"
    START_TIMEOUT = 30.0

    def __init__(self, transport):
        self.channel = transport.open_session()
        self.channel.exec_command("exec sh")
        # Whatever the login shell's rc files print comes before the first marker and is dropped with it.
        self.run("true", self.START_TIMEOUT)

    def run(self, line: str, timeout: float | None, shown: tuple | None = None, tag: str = "") -> tuple[int, str, str]:
        """Run one command line; ``shown`` = (stdout sink, stderr sink) to show its output as it arrives; ``tag``
        (hex) marks it and all it starts (``files.RUN_TAG``), so it can be stopped when the deploy is."""
        marker = uuid.uuid4().hex  # hex only: safe in the shell text
        env = f"export {files.RUN_TAG}={tag}; " if re.fullmatch(r"[0-9a-f]+", tag) else ""
        self.channel.sendall(self.WRAP.format(env=env, line=line, marker=marker).encode())
        return self._read(marker, timeout, shown or (None, None))

    def _read(self, marker: str, timeout: float | None, shown: tuple) -> tuple[int, str, str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        out_end = re.compile(rb"\n" + marker.encode() + rb" (\d+)\n\Z")
        err_end = b"\n" + marker.encode() + b"\n"
        # What may be the start of a marker line is held back from the screen until the next bytes tell.
        show_out, show_err = (_Shown(sink, hold=len(marker) + 8) for sink in shown)
        while True:
            while self.channel.recv_ready():
                out += self.channel.recv(CHUNK)
            while self.channel.recv_stderr_ready():
                err += self.channel.recv_stderr(CHUNK)
            done = out_end.search(out[-80:])
            if done and err.endswith(err_end):
                stdout, stderr = out[: len(out) - len(done.group(0))], err[: -len(err_end)]
                show_out.finish(stdout)
                show_err.finish(stderr)
                return int(done.group(1)), stdout.decode(errors="replace"), stderr.decode(errors="replace")
            show_out.feed(out)
            show_err.feed(err)
            if self.channel.exit_status_ready() and not (self.channel.recv_ready() or self.channel.recv_stderr_ready()):
                raise _ShellLost("the connection's shell ended before the command did")
            if deadline is not None and timeout is not None and time.monotonic() > deadline:
                raise _ShellLost(out_of_time(timeout))
            # Wakes on stdout at once; stderr alone (it does not wake the select) is looked at every 10 ms.
            select.select([self.channel], [], [], 0.01)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()


class _Shown:
    """Passes a command's output on to ``sink`` as it arrives, all but the last ``hold`` bytes until it ends."""

    def __init__(self, sink, *, hold: int):
        self.sink, self.hold, self.sent = sink, hold, 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytearray) -> None:
        upto = len(data) - self.hold
        if self.sink is not None and upto > self.sent:
            self._write(data[self.sent:upto])
            self.sent = upto

    def finish(self, data: bytearray) -> None:
        if self.sink is not None:
            self._write(data[self.sent:], final=True)

    def _write(self, chunk: bytearray, final: bool = False) -> None:
        text = self.decoder.decode(bytes(chunk), final=final)
        if text:
            self.sink.write(text)
            self.sink.flush()


def write_new(local_path: str, mode: int, fill) -> None:
    """Create ``local_path`` (never an existing file) with ``mode`` from the start, and ``fill`` it; a failed
    fill leaves no partial file behind."""
    fd = os.open(local_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(fd, "wb") as sink:
            fill(sink)
        os.chmod(local_path, mode)  # the umask may have taken bits away; the mode asked for is the mode kept
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(local_path)
        raise


def _output_streams(argv: Sequence[str], stream: bool, tail: _Tail | None) -> dict:
    """Where a command's output goes: into ``tail`` when it is kept for a failure report, else to the terminal
    when streamed (credentials masked), else nowhere but the result."""
    if tail is not None:
        return {"out_stream": tail.out, "err_stream": tail.err}
    return _masking_streams(argv) if stream else {}


def _masking_streams(argv: Sequence[str]) -> dict:
    """Where shown output goes when the command carries credentials: masked, as a tool may print its arguments."""
    secrets = secrets_in(argv)
    if not secrets:
        return {}
    return {"out_stream": _MaskingStream(sys.stdout, secrets), "err_stream": _MaskingStream(sys.stderr, secrets)}


class _MaskingStream:
    """Passes output on by whole lines with ``secrets`` masked: a secret split across two chunks is still caught."""

    def __init__(self, stream, secrets: Sequence[str]):
        self._stream = stream
        self._secrets = secrets
        self._pending = ""

    def write(self, text: str) -> None:
        *lines, self._pending = re.split(r"(?<=[\r\n])", self._pending + text)
        if lines:
            self._stream.write(scrub("".join(lines), self._secrets))
            self._stream.flush()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._pending:
            self._stream.write(scrub(self._pending, self._secrets))
            self._stream.flush()
        self._pending = ""


class _Tail:
    """Where a streamed command's output goes while it is not shown: whole lines of stdout and stderr in arrival
    order (Invoke reads the two pipes in two threads), the last ones kept for the failure report."""

    def __init__(self, lines: int = 200, on_line: Callable[[str], None] | None = None):
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._lock = threading.Lock()
        self._on_line = on_line
        self.out, self.err = _TailStream(self), _TailStream(self)

    def add(self, lines: list[str]) -> None:
        with self._lock:
            self._lines.extend(lines)
        if self._on_line is not None:
            for line in lines:
                self._on_line(line)

    def text(self) -> str:
        for stream in (self.out, self.err):
            stream.close()
        with self._lock:
            return "\n".join(self._lines)


class _TailStream:
    """One pipe's writer into a ``_Tail``: a line is added once complete, so two pipes never mix within one."""

    def __init__(self, tail: _Tail):
        self._tail = tail
        self._pending = ""

    def write(self, text: str) -> None:
        *complete, self._pending = (self._pending + text).split("\n")
        if complete:
            self._tail.add(complete)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._pending:
            self._tail.add([self._pending])
        self._pending = ""


class _WriteStream:
    """The file-like object Invoke writes output to, handing each chunk to a callable."""

    def __init__(self, write):
        self._write = write

    def write(self, text: str) -> None:
        self._write(text)

    def flush(self) -> None:
        pass
