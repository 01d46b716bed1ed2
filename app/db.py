"""The quotes store: one plain SQLite file, one connection per operation.

Per-operation connections keep threads independent (no shared cursor, no global lock) and let a backup tool
copy the file with SQLite's online backup API while the service runs.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import quote

SCHEMA = """
CREATE TABLE IF NOT EXISTS quotes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    text       TEXT    NOT NULL CHECK (length(text) BETWEEN 1 AND 500),
    author     TEXT,
    created_at TEXT    NOT NULL
);
"""
BUSY_TIMEOUT_S = 5.0


class Database:
    def __init__(self, path: str) -> None:
        self.path = path

    def _uri(self, mode: str) -> str:
        return f"file:{quote(os.path.abspath(self.path))}?mode={mode}"

    def initialize(self) -> None:
        """Create the file and schema if needed. Raises ``sqlite3.Error``/``OSError`` when the path is unusable."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        con = sqlite3.connect(self._uri("rwc"), uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            # WAL lets readers (health checks, a backup) proceed while a write is in progress
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            con.commit()
        finally:
            con.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        # mode=rw: a vanished database must fail loudly, not be silently recreated empty
        con = sqlite3.connect(self._uri("rw"), uri=True, timeout=BUSY_TIMEOUT_S)
        con.row_factory = sqlite3.Row
        try:
            yield con
            con.commit()
        finally:
            con.close()

    def ping(self) -> float:
        """Prove the database answers a real query on our table; returns the latency in milliseconds."""
        started = time.perf_counter()
        with self.connect() as con:
            con.execute("SELECT id FROM quotes LIMIT 1").fetchall()
        return (time.perf_counter() - started) * 1000

    def add_quote(self, text: str, author: str | None) -> dict:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.connect() as con:
            cursor = con.execute(
                "INSERT INTO quotes (text, author, created_at) VALUES (?, ?, ?)", (text, author, created)
            )
            quote_id = cursor.lastrowid
        return {"id": quote_id, "text": text, "author": author, "created_at": created}

    def list_quotes(self, limit: int) -> list[dict]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT id, text, author, created_at FROM quotes ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [dict(row) for row in rows]

    def get_quote(self, quote_id: int) -> dict | None:
        with self.connect() as con:
            row = con.execute(
                "SELECT id, text, author, created_at FROM quotes WHERE id = ?", (quote_id,)
            ).fetchone()
        return dict(row) if row else None
