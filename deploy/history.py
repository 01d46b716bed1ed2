"""Release history on the target: one JSON line per deploy, appended, never rewritten."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from . import signals
from .commands import files
from .errors import DeployError
from .target import Target


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


def history_path(state_dir: str) -> str:
    return f"{state_dir.rstrip('/')}/history.jsonl"


def record(target: Target, state_dir: str, entry: Record) -> None:
    target.run(files.append_line(history_path(state_dir), json.dumps(asdict(entry), sort_keys=True)), check=False)


def parse(text: str) -> list[Record]:
    entries = []
    fields = set(Record.__dataclass_fields__)
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash must not hide the rest
        if isinstance(data, dict) and {"revision", "result"} <= set(data):
            entries.append(Record(**{k: v for k, v in data.items() if k in fields}))
    return entries


def recent(target: Target, state_dir: str, count: int = 10) -> list[Record]:
    result = target.probe(files.tail(history_path(state_dir), count))
    return parse(result.stdout) if result.ok else []


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
        reason = str(exc)
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if not target.dry:
            with signals.shielded():
                record(target, state_dir, Record(**{**fields, **extra}, started_at=started_wall,
                                                 duration_s=round(time.monotonic() - started, 2),
                                                 result=result, reason=reason))
