"""JSON-lines logging to stdout and a size-rotated file.

Each service instance gets its own ``logging.Logger`` that is not registered globally, so two services in one
process (as in the tests) never share handlers, and the host's logging setup is left alone.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import uuid
from datetime import datetime, timezone
from typing import Any

from .config import MASK, Config, is_secret_name

LOG_FILE_NAME = "app.log"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def request_id_from(header: str | None) -> str:
    """Reuse the caller's id when it is a sane token, so one id follows a request through proxy and app."""
    if header is not None:
        header = header.strip()
        if _REQUEST_ID_RE.match(header):
            return header
    return uuid.uuid4().hex


def _masked(key: str, value: Any) -> Any:
    if is_secret_name(key) and value is not None:
        return MASK
    if isinstance(value, dict):
        return {k: _masked(str(k), v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, msg, then any ``extra=`` fields (secret-named ones masked)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = _masked(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # ensure_ascii keeps every line pure ASCII whatever bytes a client sent us
        return json.dumps(entry, default=str)


class StdoutHandler(logging.StreamHandler):
    """Looks ``sys.stdout`` up at each write, so a replaced stdout (test capture, reattached tty) is honoured."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(config: Config, name: str = "app") -> logging.Logger:
    logger = logging.Logger(name, config.log_level)
    formatter = JsonFormatter()
    stdout = StdoutHandler()
    stdout.setFormatter(formatter)
    logger.addHandler(stdout)

    path = os.path.join(config.log_dir, LOG_FILE_NAME)
    try:
        os.makedirs(config.log_dir, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            path, maxBytes=config.log_max_bytes, backupCount=config.log_backup_count, encoding="utf-8"
        )
    except OSError as exc:
        logger.warning("log directory not writable; logging to stdout only",
                       extra={"log_dir": config.log_dir, "error": str(exc)})
    else:
        rotating.setFormatter(formatter)
        logger.addHandler(rotating)
    return logger


def close_logging(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)
