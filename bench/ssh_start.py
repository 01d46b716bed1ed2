#!/usr/bin/env python3
"""What a deploy over SSH pays before its first command, part by part, on a real sshd on 127.0.0.1.

Usage, from the repository root (needs OpenSSH's sshd, as the integration tests do; no Docker):

    .venv/bin/python bench/ssh_start.py              # 5 runs, medians
    .venv/bin/python bench/ssh_start.py --runs 10

Printed: importing fabric and paramiko (in a fresh interpreter, bytecode cached), opening the connection (key
exchange and public-key login), starting the one shell a deploy runs its commands in (``SshTarget``'s first
command: a session, the login shell with its rc files, ``exec sh``), a command in that running shell, and for
comparison a command on a session of its own (what each command would cost without the shell). The login shell's
rc files are the host's: a version manager's init there (``pyenv init``, ``nvm``) shows in the last two rows.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fabric  # noqa: E402

from droplet_deploy.transport.target import SshTarget  # noqa: E402
from tests.support.sshd import running_sshd  # noqa: E402

IMPORT = "import time; t = time.monotonic(); import fabric, paramiko; print(time.monotonic() - t)"


def once(sshd, cwd: str) -> dict[str, float]:
    took: dict[str, float] = {}
    imported = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True,  # noqa: S603
                              check=True)  # fixed argv
    took["import fabric + paramiko"] = float(imported.stdout)
    started = time.monotonic()
    connection = fabric.Connection(sshd.alias, config=sshd.fabric_config(), connect_kwargs=sshd.connect_kwargs())
    connection.open()
    took["connect and log in"] = time.monotonic() - started
    target = SshTarget(connection, cwd, echo=False)
    try:
        for name in ("first command (starts the shell)", "a command in the running shell"):
            started = time.monotonic()
            target.probe(["true"], check=True)
            took[name] = time.monotonic() - started
        started = time.monotonic()
        channel = connection.transport.open_session()
        channel.exec_command("true")
        channel.recv_exit_status()
        channel.close()
        took["a command on a session of its own"] = time.monotonic() - started
    finally:
        target.close()
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp, running_sshd(Path(tmp) / "sshd") as sshd:
        runs = [once(sshd, tmp) for _ in range(args.runs)]
    print(f"before the first command of a deploy over SSH, medians of {args.runs} (bench/ssh_start.py)")
    for name in runs[0]:
        print(f"  {name:<36} {statistics.median(r[name] for r in runs):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
