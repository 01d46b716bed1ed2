"""Settings read once from the environment into a frozen, typed ``Config``.

Every variable is declared once in ``SETTINGS``. ``load`` collects *all* problems before failing, so a
broken deployment is fixed in one round instead of one variable per restart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
MASK = "***"
MIN_SECRET_KEY_LENGTH = 16
_REVISION_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


class Secret:
    """A string that never shows itself in repr/str, so it cannot leak through a log call or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigError(Exception):
    """All problems found in one pass; each names its variable and says how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Problem(ValueError):
    """Raised by a parser; the message is completed into one line naming the variable."""


@dataclass(frozen=True)
class Config:
    env: str = "development"
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen beyond loopback
    port: int = 8000
    revision: str = "unknown"
    db_path: str = "/data/app.db"
    log_dir: str = "/logs"
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    drain_seconds: float = 10.0
    boot_delay: float = 0.0
    secret_key: Secret | None = None
    demo_user: str | None = None
    demo_password: Secret | None = None
    ready_upstreams: tuple[str, ...] = ()
    ready_timeout: float = 2.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    def masked(self) -> dict[str, Any]:
        """The effective settings by variable name, secrets replaced by ``***`` (for the start-up log line)."""
        out: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if value is None:
                out[setting.name] = None
            elif is_secret_name(setting.name) or isinstance(value, Secret):
                out[setting.name] = MASK
            elif isinstance(value, tuple):
                out[setting.name] = [redact_url(v) for v in value]
            else:
                out[setting.name] = value
        return out


# --- parsers: raw string -> value, or Problem("is not ...") -------------------------------------------


def _integer(low: int, high: int, hint: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise Problem(f"is not an integer ({hint})") from None
        if not low <= value <= high:
            raise Problem(f"is out of range ({hint})")
        return value

    return parse


def _number(low: float, high: float, hint: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise Problem(f"is not a number ({hint})") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise Problem(f"is out of range ({hint})")
        return value

    return parse


def _choice(options: tuple[str, ...], fold: Callable[[str], str] = str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = fold(raw.strip())
        if value not in options:
            raise Problem(f"is not one of {', '.join(options)}")
        return value

    return parse


def _text(max_length: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw) > max_length:
            raise Problem(f"is too long (at most {max_length} characters)")
        return raw

    return parse


def _path(raw: str) -> str:
    if "\x00" in raw:
        raise Problem("is not a valid path (it contains a NUL byte)")
    return raw


def _revision(raw: str) -> str:
    if not _REVISION_RE.match(raw):
        raise Problem("is not a valid revision (use up to 128 of A-Z a-z 0-9 . _ -, e.g. a git SHA)")
    return raw


def _secret_key(raw: str) -> Secret:
    if len(raw) < MIN_SECRET_KEY_LENGTH:
        raise Problem(f"is too short ({len(raw)} characters; set at least {MIN_SECRET_KEY_LENGTH} random ones)")
    return Secret(raw)


def _secret(raw: str) -> Secret:
    return Secret(raw)


def _urls(raw: str) -> tuple[str, ...]:
    urls = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            parts = urlsplit(item)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise Problem(f"has an invalid URL {redact_url(item)!r} (use comma-separated http:// or https:// URLs)")
        urls.append(item)
    return tuple(urls)


def redact_url(url: str) -> str:
    """Hide a password embedded in a URL (``http://user:pw@host``) before it is shown anywhere."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


@dataclass(frozen=True)
class Setting:
    name: str
    field: str
    parse: Callable[[str], Any]
    doc: str
    echo: bool = True  # False where the raw value may carry a credential (the parser names the bad part)


SETTINGS: tuple[Setting, ...] = (
    Setting("APP_ENV", "env", _choice(ENVIRONMENTS, str.lower), "development, test or production"),
    Setting("APP_HOST", "host", _text(255), "address to listen on"),
    Setting("APP_PORT", "port", _integer(1, 65535, "set a port 1-65535"), "port to listen on"),
    Setting("APP_REVISION", "revision", _revision, "revision the image was built from (set by the build)"),
    Setting("APP_DB_PATH", "db_path", _path, "SQLite database file"),
    Setting("APP_LOG_DIR", "log_dir", _path, "directory for the rotated app.log"),
    Setting("APP_LOG_LEVEL", "log_level", _choice(LOG_LEVELS, str.upper), "DEBUG, INFO, WARNING or ERROR"),
    Setting("APP_LOG_MAX_BYTES", "log_max_bytes", _integer(1024, 2**30, "set bytes 1024-1073741824"),
            "rotate app.log at this size"),
    Setting("APP_LOG_BACKUP_COUNT", "log_backup_count", _integer(0, 100, "set a count 0-100"),
            "rotated files to keep"),
    Setting("APP_DRAIN_SECONDS", "drain_seconds", _number(0, 3600, "set seconds 0-3600"),
            "how long in-flight requests may run after SIGTERM"),
    Setting("APP_BOOT_DELAY", "boot_delay", _number(0, 600, "set seconds 0-600"),
            "sleep before listening (models a slow boot)"),
    Setting("APP_SECRET_KEY", "secret_key", _secret_key, "signs session cookies; required in production"),
    Setting("APP_DEMO_USER", "demo_user", _text(128), "user accepted by POST /login"),
    Setting("APP_DEMO_PASSWORD", "demo_password", _secret, "password for APP_DEMO_USER"),
    Setting("APP_READY_UPSTREAMS", "ready_upstreams", _urls, "comma-separated URLs /health/ready checks",
            echo=False),
    Setting("APP_READY_TIMEOUT", "ready_timeout", _number(0.1, 30, "set seconds 0.1-30"),
            "timeout of each upstream check"),
)

_FIELDS = {f.name for f in fields(Config)}
assert all(s.field in _FIELDS for s in SETTINGS), "every setting must map to a Config field"


def _shown(setting: Setting, raw: str) -> str:
    name = setting.name
    if is_secret_name(name) or not setting.echo:
        return name
    clipped = raw if len(raw) <= 60 else raw[:57] + "..."
    return f"{name}={clipped!r}"


def load(environ: Mapping[str, str]) -> Config:
    """Build a ``Config`` from ``environ`` or raise ``ConfigError`` listing every problem.

    An empty value counts as unset, so ``APP_SECRET_KEY=`` in an env file is reported as missing.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = environ.get(setting.name, "")
        if raw == "":
            continue
        try:
            values[setting.field] = setting.parse(raw)
        except Problem as exc:
            problems.append(f"{_shown(setting, raw)} {exc}")

    env = values.get("env", Config.env)
    if env == "production" and "secret_key" not in values and not environ.get("APP_SECRET_KEY"):
        problems.append(
            f"APP_SECRET_KEY is required when APP_ENV=production "
            f"(set at least {MIN_SECRET_KEY_LENGTH} random characters in the host's .env)"
        )
    user_set, password_set = bool(environ.get("APP_DEMO_USER")), bool(environ.get("APP_DEMO_PASSWORD"))
    if user_set and not password_set:
        problems.append("APP_DEMO_PASSWORD is required when APP_DEMO_USER is set (set both or neither)")
    if password_set and not user_set:
        problems.append("APP_DEMO_USER is required when APP_DEMO_PASSWORD is set (set both or neither)")

    if problems:
        raise ConfigError(problems)
    return Config(**values)
