"""One validator for every number a user gives: task flags (``--timeout 30``) and config values alike.

A number is accepted when it is a number at all, finite (``nan`` would make a deadline never pass and ``inf`` is
a wait that never ends while the deploy lock is held), whole where a count or a port is meant, and inside the
range that makes sense for what it measures. Anything else is one line naming the flag or key and the fix:
``UsageError`` for a flag, ``ConfigError`` for a setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from droplet_deploy.core.errors import ConfigError, UsageError


@dataclass(frozen=True)
class Range:
    """What a numeric flag or setting accepts."""

    what: str  # what it counts, for the fix: "seconds", "a port", "a number of lines"
    low: float
    high: float
    whole: bool = False  # counts, ports and lines take no fractions
    above_low: bool = False  # ``low`` itself is refused: a timeout of 0 s can never be met
    example: str = "30"

    def describe(self) -> str:
        if self.above_low:
            return f"{self.what}, more than {self.low:g} and at most {self.high:g}"
        return f"{self.what} from {self.low:g} to {self.high:g}"


# A deploy waits at most this long for anything: beyond a day it is a mistake, and it would hold the lock.
DAY = 86_400.0
TIMEOUT = Range("seconds", 0, DAY, above_low=True, example="60")
INTERVAL = Range("seconds", 0, 3_600, above_low=True, example="0.5")
DRAIN = Range("whole seconds", 0, 3_600, whole=True, example="15")
# A live deploy refreshes its lock's heartbeat several times within this bound (lock.heartbeat_interval).
LOCK_STALE = Range("seconds", 10, DAY, example="120")
# The SSH link check: long enough for a slow link to answer, short enough that a lost one is noticed in time.
LINK = Range("seconds", 1, 300, example="15")
PORT = Range("a port", 1, 65_535, whole=True, example="8000")
KEEP = Range("a count", 1, 10_000, whole=True, example="5")
REPLICAS = Range("a count of tasks", 1, 1_000, whole=True, example="2")
MEGABYTES = Range("whole MB", 0, 1_000_000_000, whole=True, example="1024")
LINES = Range("a number of lines", 0, 10_000_000, whole=True, example="100")
# Rollback reads this many history lines; status shows no more than that.
RELEASES = Range("a number of releases", 1, 1_000, whole=True, example="5")


class Invalid(ValueError):
    """Why a value is not a number the range accepts; the caller names the flag or key."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def number(value: object, rule: Range) -> int | float:
    """``value`` (a flag's text, or a number from a config file) as a number ``rule`` accepts, else ``Invalid``."""
    parsed = _parse(value, rule.whole)
    if parsed is None:
        raise Invalid("is not a whole number" if rule.whole else "is not a number")
    if isinstance(parsed, float) and not math.isfinite(parsed):
        raise Invalid("is not a finite number")
    if parsed < rule.low or (rule.above_low and parsed == rule.low):
        raise Invalid(f"must be greater than {rule.low:g}" if rule.above_low else f"must be at least {rule.low:g}")
    if parsed > rule.high:
        raise Invalid(f"must be at most {rule.high:g}")
    return parsed if rule.whole else float(parsed)


def flag(name: str, value: object, rule: Range) -> int | float:
    """A task flag's value (``name`` without dashes), or a ``UsageError`` naming ``--name`` and the fix."""
    try:
        return number(value, rule)
    except Invalid as exc:
        raise UsageError(f"--{name} {_show(value)} {exc.problem}",
                         hint=f"give {rule.describe()}, e.g. --{name} {rule.example}") from None


def setting(key: str, value: object, rule: Range) -> int | float:
    """A config value (``key`` as the user wrote it, e.g. ``deploy.environments.prod.health_timeout``)."""
    try:
        return number(value, rule)
    except Invalid as exc:
        raise ConfigError(key, f"{_show(value)} {exc.problem}",
                          f"set it to {rule.describe()}, e.g. {rule.example}") from None


def _parse(value: object, whole: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if whole and math.isfinite(value):
            return int(value) if value.is_integer() else None
        return value
    if not isinstance(value, str):
        return None
    try:
        return int(value.strip()) if whole else float(value.strip())
    except (ValueError, OverflowError):
        return None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
