"""Which files in the state dir's ``swarm/`` are done with. Pure: a listing in, names out.

A stack file (``<stack>-<tag>.yml``) inlines the env file's values: it is needed while its release is rolled out,
and the one in service stays for whoever reads what runs. A rollout or rollback writes the stack file it runs from
anew, so the others are removed once a release is in service. A one-off's env file (``.exec-<pid>-<ns>.env``) is
removed after its run; one left by a run that was killed is removed a day later (a run may still be going on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXEC_ENV_DAYS = 1
_EXEC_ENV = re.compile(r"^\.exec-\d+-(?P<ns>\d+)\.env$")
_NS_PER_DAY = 86_400 * 10**9


def stack_file_name(stack: str, tag: str) -> str:
    return f"{stack}-{tag}.yml"


def exec_env_name(pid: int, now_ns: int) -> str:
    return f".exec-{pid}-{now_ns}.env"


def done_with(names: Iterable[str], stack: str, serving_tag: str, now_ns: int) -> list[str]:
    """The stack files of ``stack`` other than the serving release's, and one-off env files older than a day.
    Another stack's files (``shop-beta`` beside ``shop``) are never named: a tag is 12 hex digits (``-dirty``)."""
    own = re.compile(rf"^{re.escape(stack)}-[0-9a-f]{{12}}(?:-dirty)?\.yml$")
    keep = stack_file_name(stack, serving_tag)
    found = []
    for name in names:
        old_env = _EXEC_ENV.match(name)
        if (own.match(name) and name != keep) or \
                (old_env and now_ns - int(old_env.group("ns")) > EXEC_ENV_DAYS * _NS_PER_DAY):
            found.append(name)
    return sorted(found)
