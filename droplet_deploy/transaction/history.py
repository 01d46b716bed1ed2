"""Release history on the target: one JSON line per deploy, appended, never rewritten."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from droplet_deploy.commands import files
from droplet_deploy.core import signals
from droplet_deploy.core.errors import DeployError
from droplet_deploy.core.redact import clean, redact
from droplet_deploy.transport.target import Target


@dataclass(frozen=True)
class Record:
    revision: str
    image: str
    env: str
    who: str
    started_at: float
    duration_s: float
    result: str  # "ok" | "failed" | "interrupted" | "rolled-back"
    reason: str = ""
    action: str = "deploy"
    skipped_backup: bool = False
    backup: str = ""
    proof: str = ""  # how the running revision was proven: "health body" or "image label of <container>"
    # The env file's sha256 (deploy.envfile), never its values: what the replaced app containers were started
    # with, and what the ones running after this change read. Empty when no env file is configured.
    env_sha256_before: str = ""
    env_sha256_after: str = ""
    release: str = ""  # the id of the files kept with this release in the state dir (droplet_deploy/transaction/release_files.py)


def history_path(state_dir: str) -> str:
    return f"{state_dir.rstrip('/')}/history.jsonl"


def record(target: Target, state_dir: str, entry: Record) -> bool:
    """Append ``entry`` (on disk before it returns); a line that could not be written is a warning, never the
    change's failure: what the change did stands, only its record is missing."""
    path = history_path(state_dir)
    try:
        result = target.run(files.append_line(path, json.dumps(asdict(entry), sort_keys=True)), check=False,
                            does=f"record the {entry.action} in the release history ({entry.result})")
        problem = "" if result.ok else clean(result.stderr or result.stdout or f"exit {result.exit_status}").strip()
    except Exception as exc:  # the connection went away: the change's own outcome is what the user must see
        problem = redact(f"{type(exc).__name__}: {exc}")
    if problem:
        last = problem.splitlines()[-1][:200]
        target.say(f"warning: the {entry.action} ({entry.result}, {entry.revision[:12]}) is not in the release "
                   f"history {path}: {last}; `inv deploy.status` will not list it")
    return not problem


@dataclass(frozen=True)
class Lines:
    """The records of the history lines read, and how many lines could not be read at all."""

    records: list[Record]
    unreadable: int = 0


# What a line may lack (or hold in the wrong type) and still be shown: the value put in its place.
_FILL = {"image": "", "env": "", "who": "", "started_at": 0.0, "duration_s": 0.0}
# Seconds since 1970 up to the year 5000: anything else is not a time (and would crash time.localtime).
_LATEST = 95_617_584_000.0


def parse(text: str) -> list[Record]:
    return read(text).records


def read(text: str) -> Lines:
    """Every line that names a revision and a result becomes a Record, other fields filled in where missing or
    of the wrong type; a line cut short by a crash, or hand-edited beyond that, is counted and skipped so it
    never hides the rest."""
    records, unreadable = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = _record(json.loads(line))
        except ValueError:
            entry = None
        if entry is None:
            unreadable += 1
        else:
            records.append(entry)
    return Lines(records, unreadable)


def _record(data: object) -> Record | None:
    if not isinstance(data, dict):
        return None
    if not all(isinstance(data.get(key), str) and data[key] for key in ("revision", "result")):
        return None
    values = {"revision": data["revision"], "result": data["result"]}
    for name, spec in Record.__dataclass_fields__.items():
        if name not in values:
            fill = _FILL.get(name, spec.default)
            value = data.get(name, fill)
            values[name] = value if _fits(value, fill) else fill
    return Record(**values)


def _fits(value: object, fill: object) -> bool:
    if isinstance(fill, bool) or isinstance(fill, str):
        return type(value) is type(fill)
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= _LATEST)  # also false for NaN


def recent(target: Target, state_dir: str, count: int = 10) -> list[Record]:
    return recent_lines(target, state_dir, count).records


def recent_lines(target: Target, state_dir: str, count: int = 10) -> Lines:
    """The last ``count`` lines of the history (none when there is no history yet)."""
    result = target.probe(files.tail(history_path(state_dir), count))
    return read(result.stdout) if result.ok else Lines([])


@contextlib.contextmanager
def recorded(target: Target, state_dir: str, **fields) -> Iterator[dict]:
    """Append one history line for the block whatever its outcome: ok, failed (with the error) or interrupted
    (by Ctrl-C, SIGTERM or SIGHUP, named in the reason).

    ``fields`` are the Record's own (revision, image, env, who, action, ...); the block may add more to the
    yielded dict once it knows them (e.g. the id of the backup it took). Nothing is written in a dry run.
    """
    started_wall, started = time.time(), time.monotonic()
    extra: dict = {}
    result, reason = "failed", ""
    try:
        yield extra
        result = "ok"
    except KeyboardInterrupt as exc:
        result, reason = "interrupted", f"interrupted by {signals.describe(exc)}"
        raise
    except DeployError as exc:
        reason = redact(str(exc))
        raise
    except Exception as exc:
        reason = redact(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if not target.dry:
            with signals.shielded():
                record(target, state_dir, Record(**{**fields, **extra}, started_at=started_wall,
                                                 duration_s=round(time.monotonic() - started, 2),
                                                 result=result, reason=reason))
