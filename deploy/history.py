"""Release history on the target: one JSON line per deploy, appended, never rewritten."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .commands import files
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
