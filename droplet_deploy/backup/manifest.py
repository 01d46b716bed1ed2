"""What a backup holds and how it is checked: pure functions over text, no I/O.

A backup is a directory ``<backup_dir>/<env>/<id>/`` whose ``manifest.json`` lists every file with its size and
sha256. The manifest is written last, so a directory without one is an unfinished backup, never a usable one.
``SHA256SUMS`` holds the same sums in ``sha256sum -c`` format for checking by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
# Written beside the manifest by each check of the backup (the one right after it is made, and backup.verify):
# whether it passed. Retention always keeps the newest backup whose last check passed.
VERDICT = "verified.json"
SQLITE_FILE = "database.sqlite3"
DUMP_FILE = "database.dump"

# <UTC timestamp>-<revision>; no '/' and no leading '.', so an id can never point outside the backup directory.
ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    private: bool = False  # a secret (the .env): stored mode 600, never printed


@dataclass(frozen=True)
class Manifest:
    id: str
    env: str
    project: str
    created_at: str
    revision: str
    image: str
    tool: str
    database: Mapping[str, str]
    files: tuple[FileEntry, ...]
    note: str = ""
    duration_s: float = 0.0
    format: int = FORMAT
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def database_file(self) -> str:
        return self.database.get("file", "")

    @property
    def is_sqlite(self) -> bool:
        return self.database.get("kind") == "sqlite"

    def entry(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("extra")
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps({**dict(self.extra), **data}, indent=2, sort_keys=True) + "\n"


def new_id(created: datetime, revision: str | None) -> str:
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rev = re.sub(r"[^A-Za-z0-9]+", "", revision or "")[:12] or "unknown"
    return f"{stamp}-{rev}"


def iso(created: datetime) -> str:
    return created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Exactly the ids ``new_id`` makes: the only directory names (bare or after ``.incoming-``) the toolkit deletes.
# ``ID_RE`` is wider (``<id>.keep`` matches it): an operator's copy under such a name is theirs.
OWN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9]{1,12}$")


def valid_id(text: str) -> bool:
    return bool(ID_RE.match(text or ""))


def own_id(text: str) -> bool:
    """Whether ``text`` is a backup id the toolkit makes (and so a directory it may delete)."""
    return bool(OWN_ID_RE.match(text or ""))


def safe_name(text: str) -> str:
    """A container or file name reduced to characters that are harmless in a path."""
    return _SAFE.sub("_", text).strip("._") or "unnamed"


def build(*, backup_id: str, env: str, project: str, created_at: str, revision: str, image: str, tool: str,
          database: Mapping[str, str], sums: Mapping[str, str], sizes: Mapping[str, int],
          private: Iterable[str] = (), note: str = "", duration_s: float = 0.0) -> Manifest:
    """The manifest of the files in ``sums``; every one must also have a size (else ValueError names it)."""
    secret = set(private)
    missing = sorted(set(sums) ^ set(sizes))
    if missing:
        raise ValueError(f"no checksum or size for {missing[0]}")
    files = tuple(FileEntry(path, int(sizes[path]), sums[path], path in secret) for path in sorted(sums))
    return Manifest(id=backup_id, env=env, project=project, created_at=created_at, revision=revision,
                    image=image, tool=tool, database=dict(database), files=files, note=note,
                    duration_s=round(duration_s, 2))


_STRING_FIELDS = ("id", "env", "project", "created_at", "revision", "image", "tool")
_KNOWN_FIELDS = {*_STRING_FIELDS, "database", "files", "note", "duration_s", "format"}


def parse(text: str) -> Manifest:
    """A manifest from its JSON; ValueError names the first field that is missing or wrong."""
    data = _json_object(text)
    _check_header(data)
    database = _database(data)
    files = _files(data)
    return Manifest(id=data["id"], env=data["env"], project=data["project"], created_at=data["created_at"],
                    revision=data["revision"], image=data["image"], tool=data["tool"], database=database,
                    files=files, note=str(data.get("note", "")),
                    duration_s=float(data.get("duration_s") or 0.0),
                    extra={k: v for k, v in data.items() if k not in _KNOWN_FIELDS})


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST} is not a JSON object")
    return data


def _check_header(data: Mapping[str, Any]) -> None:
    """The format, which must be this version's, and the string fields that name the backup."""
    if data.get("format") != FORMAT:
        raise ValueError(f"{MANIFEST} has format {data.get('format')!r}; this version reads format {FORMAT}")
    for key in _STRING_FIELDS:
        if not isinstance(data.get(key), str):
            raise ValueError(f"{MANIFEST}: {key} is missing or not a string")
    if not valid_id(data["id"]):
        raise ValueError(f"{MANIFEST}: id {data['id']!r} is not a backup id")


def _database(data: Mapping[str, Any]) -> dict[str, str]:
    database = data.get("database")
    if not isinstance(database, dict) or not all(isinstance(v, str) for v in database.values()):
        raise ValueError(f"{MANIFEST}: database is missing or malformed")
    return database


def _files(data: Mapping[str, Any]) -> tuple[FileEntry, ...]:
    raw_files = data.get("files")
    if not isinstance(raw_files, list):
        raise ValueError(f"{MANIFEST}: files is missing")
    return tuple(_file_entry(item) for item in raw_files)


def _file_entry(item: Any) -> FileEntry:
    try:
        entry = FileEntry(str(item["path"]), int(item["size"]), str(item["sha256"]), bool(item.get("private")))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{MANIFEST}: a files entry is malformed: {str(item)[:80]}") from None
    if not _inside(entry.path):
        raise ValueError(f"{MANIFEST}: file path {entry.path!r} points outside the backup")
    return entry


def _inside(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def parse_listing(text: str) -> tuple[list[Manifest], list[str], list[str]]:
    """Split the output of ``commands.backup.read_manifests``: (backups, names whose manifest is unreadable,
    names holding the manifest of another id: a copy someone made, e.g. renamed to ``<id>.keep`` to pin it)."""
    good: list[Manifest] = []
    bad: list[str] = []
    copies: list[str] = []
    for chunk in text.split("\x1e")[1:]:
        header, _, body = chunk.partition("\n")
        name = header.strip().rstrip("/").rsplit("/", 1)[-1]
        try:
            found = parse(body)
        except ValueError:
            bad.append(name)
            continue
        if found.id == name:
            good.append(found)
        else:
            copies.append(name)
    return good, bad, copies


def sums_text(manifest: Manifest) -> str:
    return "".join(f"{f.sha256}  {f.path}\n" for f in manifest.files)


def parse_sums(stdout: str) -> dict[str, str]:
    """``sha256sum`` output: ``<hex>  <path>`` per line (``*`` marks binary mode on some systems)."""
    sums = {}
    for line in stdout.splitlines():
        digest, sep, path = line.partition(" ")
        if sep and len(digest) == 64:
            sums[path.lstrip(" *")] = digest.lower()
    return sums


def parse_sizes(stdout: str) -> dict[str, int]:
    """``stat -c '%s %n'`` output: ``<bytes> <path>`` per line."""
    sizes = {}
    for line in stdout.splitlines():
        size, sep, path = line.partition(" ")
        if sep and size.isdigit():
            sizes[path] = int(size)
    return sizes


def compare(files: Sequence[FileEntry], actual: Mapping[str, str]) -> list[str]:
    """One problem per file that is missing or whose sha256 differs, named by its path in the backup."""
    problems = []
    for entry in files:
        found = actual.get(entry.path)
        if found is None:
            problems.append(f"{entry.path}: missing")
        elif found != entry.sha256:
            problems.append(f"{entry.path}: checksum mismatch")
    return problems


def choose_prune(ids: Iterable[str], keep: int, protect: Iterable[str] = ()) -> list[str]:
    """The backups to delete, oldest first: all but the newest ``keep``; never one in ``protect``.

    Ids start with a UTC timestamp, so their sort order is their age.
    """
    if keep < 1:
        raise ValueError("keep at least one backup")
    kept = set(protect)
    ordered = sorted(set(i for i in ids if own_id(i)))
    return [i for i in ordered[:-keep] if i not in kept] if len(ordered) > keep else []


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def verdict_text(ok: bool, detail: str, at: str) -> str:
    return json.dumps({"ok": ok, "detail": detail, "at": at}, sort_keys=True) + "\n"


def parse_verdicts(text: str) -> dict[str, bool]:
    """The output of ``commands.backup.read_verdicts``: each backup directory's name and whether its last check
    passed (a verdict that does not parse counts as failed)."""
    found = {}
    for chunk in text.split("\x1e")[1:]:
        header, _, body = chunk.partition("\n")
        name = header.strip().rstrip("/").rsplit("/", 1)[-1]
        try:
            found[name] = json.loads(body).get("ok") is True
        except (ValueError, AttributeError):
            found[name] = False
    return found


def newest_verified(ids: Iterable[str], verdicts: Mapping[str, bool]) -> str | None:
    passed = sorted(i for i in ids if verdicts.get(i))
    return passed[-1] if passed else None
