"""``python3 -m migrations``: bring the database named by DATABASE_URL up to the newest step.

Run by the deploy's pre_switch hook in a one-off container of the new image, on the stack's network, with the
app's own environment: it reaches the database exactly as the app does. The password, when the URL has none,
comes from POSTGRES_PASSWORD in that environment (the host's env file). The server may still be starting (the
first deploy starts it just before): connecting is retried until MIGRATE_WAIT_SECONDS have passed.
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import unquote, urlsplit

import pg8000.dbapi

STEPS = [
    ("0001_quotes", "create table quotes (id serial primary key, text text not null, author text not null)"),
    ("0002_quotes_created", "alter table quotes add column created_at timestamptz not null default now()"),
]


def connect(url: str, wait: float):
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgresql:// URL, got {parts.scheme or 'none'}://")
    options = {"user": unquote(parts.username or "postgres"), "host": parts.hostname or "localhost",
               "port": parts.port or 5432, "database": unquote(parts.path.lstrip("/")) or None,
               "password": unquote(parts.password) if parts.password else os.environ.get("POSTGRES_PASSWORD")}
    deadline = time.monotonic() + wait
    while True:
        try:
            return pg8000.dbapi.connect(**options, timeout=10)
        except (OSError, pg8000.dbapi.InterfaceError) as exc:
            if time.monotonic() > deadline:
                sys.exit(f"no database at {options['host']}:{options['port']} after {wait:.0f}s: {exc}")
            time.sleep(1)


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: the migrations reach the database through it, as the app does")
    con = connect(url, float(os.environ.get("MIGRATE_WAIT_SECONDS", "60")))
    cur = con.cursor()
    cur.execute("create table if not exists schema_steps (name text primary key, applied_at timestamptz "
                "not null default now())")
    con.commit()
    cur.execute("select name from schema_steps")
    done = {row[0] for row in cur.fetchall()}
    for name, sql in STEPS:
        if name in done:
            continue
        cur.execute(sql)
        cur.execute("insert into schema_steps (name) values (%s)", (name,))
        con.commit()
        print(f"applied {name}")
    print(f"database at step {STEPS[-1][0]}")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
