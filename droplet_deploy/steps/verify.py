"""Prove a built image holds exactly this revision and nothing stale.

Each check runs against the image itself (inspect, or a throwaway container with no network) and yields a
``Check`` with pass/fail, what it saw and, when it fails, its own fix. ``verify_image`` raises ``VerifyFailed``
naming every failed check and the fixes of those checks (not one blanket "rebuild": a root user or a baked-in
.env survives any rebuild).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from droplet_deploy.commands import docker
from droplet_deploy.commands import verify as verify_cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import VerifyFailed
from droplet_deploy.core.redact import clean, display
from droplet_deploy.transport.target import Target


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what to change when it failed; VerifyFailed's line lists the fixes of the failed checks


BUILD_FIRST = "build it first"
REVISION_FIX = ("build with `inv build` (it passes REVISION) from a Dockerfile with `ARG REVISION` and "
                "`LABEL org.opencontainers.image.revision=$REVISION`")
BYTECODE_FIX = ("keep bytecode out of the image: `ENV PYTHONDONTWRITEBYTECODE=1`, `**/__pycache__` and `**/*.pyc` "
                "in .dockerignore, or rebuild with `inv build --no-cache`")
APP_DIR_FIX = "set deploy.app_dir to the directory the Dockerfile copies the app into"
USER_FIX = "add a `USER` line with a non-root uid to the Dockerfile, e.g. `USER 10001:10001`"
ENV_FIX = ("add .env and .env.* to .dockerignore, keep secrets out of the build context, and rotate the ones "
           "that were in the image")
FIND_FIX = "the image needs `find` (findutils) for this check"
CHECK_TIMEOUT = 120  # seconds for the checks' container(s); the check command may import a large app


_ROUTES_RE = re.compile(r"(\d+)\s+routes?\b")


def check_revision(labels: dict | None, expected: str) -> Check:
    found = (labels or {}).get(docker.REVISION_LABEL)
    if found == expected:
        return Check("revision label", True, f"{docker.REVISION_LABEL}={expected[:12]}")
    return Check("revision label", False, f"label says {found or 'nothing'!s:.20}, HEAD is {expected[:12]}",
                 fix=REVISION_FIX)


def check_bytecode(exit_status: int, stdout: str, app_dir: str) -> Check:
    found = [line for line in stdout.splitlines() if line.strip()]
    if exit_status != 0:
        return Check("no bytecode", False, f"cannot search {app_dir} (find exited {exit_status})", fix=APP_DIR_FIX)
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        return Check("no bytecode", False, f"found {found[0]}{more}", fix=BYTECODE_FIX)
    return Check("no bytecode", True, f"no .pyc or __pycache__ under {app_dir}")


def check_imports(exit_status: int, output: str, rerun: str = "") -> Check:
    """``rerun``: the command line that runs check_command in the image, for the fix."""
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    fix = f"run `{rerun}` to see the check's whole output" if rerun else "run check_command in the image yourself"
    if exit_status != 0:
        return Check("app imports", False, f"check command exited {exit_status}: {last[:160]}", fix=fix)
    match = _ROUTES_RE.search(output)
    if not match:
        return Check("app imports", False, f"check command did not report a route count: {last[:160]!r}",
                     fix=fix + "; it must print `<N> routes`")
    routes = int(match.group(1))
    if routes == 0:
        return Check("app imports", False, "app imports but has 0 routes", fix=fix)
    return Check("app imports", True, f"{routes} routes")


def check_user(exit_status: int, stdout: str) -> Check:
    uid = stdout.strip()
    if exit_status != 0 or not uid.isdigit():
        return Check("non-root user", False, f"cannot tell the user (id exited {exit_status})",
                     fix="the image needs `id` (coreutils) for this check; " + USER_FIX)
    if uid == "0":
        return Check("non-root user", False, "runs as root (uid 0)", fix=USER_FIX)
    return Check("non-root user", True, f"uid {uid}")


def check_no_env(exit_status: int, stdout: str) -> Check:
    found = [line for line in stdout.splitlines() if line.strip()]
    if found:
        return Check("no .env inside", False, f"found {', '.join(found[:3])}", fix=ENV_FIX)
    if exit_status not in (0, 1):  # find exits 1 on unreadable dirs, which is fine for this search
        return Check("no .env inside", False, f"cannot search the image (find exited {exit_status})", fix=FIND_FIX)
    return Check("no .env inside", True, "no .env file in the image")


def _own_env_name(settings: Settings) -> str:
    """The configured env_file's own name when ``.env`` and ``.env.*`` do not already cover it, else ""."""
    own = posixpath.basename(settings.env_file) if settings.env_file else ""
    return "" if not own or fnmatch.fnmatchcase(own, ".env") or fnmatch.fnmatchcase(own, ".env.*") else own


def _env_file_names(settings: Settings) -> list[str]:
    """find(1) tests for env files: ``.env``, ``.env.*`` and the configured env_file's own name, whatever it is."""
    names = [".env", ".env.*", *filter(None, [_own_env_name(settings)])]
    tests: list[str] = []
    for name in names:
        tests += [*(["-o"] if tests else []), "-name", name]
    return tests


@dataclass(frozen=True)
class Ran:
    """What one check's command printed, and how it exited."""

    exit_status: int
    stdout: str


def parse_sections(stdout: str, marker: str) -> dict[str, Ran] | None:
    """The checks' answers in the output of ``verify_cmd.VERIFY_CHECKS``; None when the script never ran (the
    image has no ``sh``). A section cut off (the container was stopped) counts as exit status -1."""
    found = {}
    pattern = re.compile(rf"^{re.escape(marker)} begin (\w+)\n(.*?)(?:\n{re.escape(marker)} end \1 (-?\d+)\n|\Z)",
                         re.S | re.M)
    for match in pattern.finditer(stdout):
        found[match.group(1)] = Ran(int(match.group(3)) if match.group(3) else -1, match.group(2))
    if not found:
        return None
    return {name: found.get(name, Ran(-1, "")) for name in verify_cmd.SECTIONS}


def run_checks(target: Target, settings: Settings, image: str, revision: str) -> Iterator[Check]:
    inspected = target.probe(docker.image_inspect(image, "{{json .Config.Labels}}"))
    if not inspected.ok:
        yield Check("image exists", False, f"{image} not found on {target.name}; run `inv build` first", fix=BUILD_FIRST)
        return
    yield check_revision(json.loads(inspected.stdout or "null"), revision)
    marker = uuid.uuid4().hex
    ran = target.probe(verify_cmd.in_one_container(image, marker, settings.app_dir, _own_env_name(settings),
                                                   settings.check_command), timeout=CHECK_TIMEOUT)
    sections = parse_sections(ran.stdout, marker)
    if sections is None:
        sections = _one_container_each(target, settings, image)
    yield from judge_sections(sections, settings, image)


def _one_container_each(target: Target, settings: Settings, image: str) -> dict[str, Ran]:
    """The checks for an image without ``sh``: a container per check (the image still needs find and id)."""
    def once(command: list[str], entrypoint: str) -> Ran:
        result = target.probe(docker.run_once(image, command, entrypoint=entrypoint), timeout=CHECK_TIMEOUT)
        return Ran(result.exit_status, result.stdout)

    check = settings.check_command
    ran = target.probe(docker.run_once(image, check[1:], entrypoint=check[0]), timeout=CHECK_TIMEOUT)
    return {
        "bytecode": once([settings.app_dir, "(", "-name", "*.pyc", "-o", "-name", "*.pyo", "-o", "-name",
                          "__pycache__", ")", "-print"], "find"),
        "user": once(["-u"], "id"),
        "env": once(["/", "-xdev", "(", *_env_file_names(settings), ")", "-not", "-name", ".env.example", "-print"],
                    "find"),
        "imports": Ran(ran.exit_status, ran.stdout + ran.stderr),
    }


def judge_sections(sections: dict[str, Ran], settings: Settings, image: str) -> Iterator[Check]:
    check = settings.check_command
    bytecode, imports, user, envs = (sections[name] for name in ("bytecode", "imports", "user", "env"))
    yield check_bytecode(bytecode.exit_status, bytecode.stdout, settings.app_dir)
    rerun = display(docker.run_once(image, check[1:], entrypoint=check[0]))
    yield check_imports(imports.exit_status, clean(imports.stdout, check), rerun)
    yield check_user(user.exit_status, user.stdout)
    yield check_no_env(envs.exit_status, envs.stdout)


def verify_image(target: Target, settings: Settings, image: str, revision: str,
                 report: Callable[[Check], None] | None = None) -> list[Check]:
    return _passed(run_checks(target, settings, image, revision), image, report)


def _passed(found: Iterable[Check], what: str, report: Callable[[Check], None] | None) -> list[Check]:
    """Every check, each reported as it comes; ``VerifyFailed`` naming ``what`` when any failed."""
    checks = []
    for check in found:
        checks.append(check)
        if report:
            report(check)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerifyFailed(what, [c.name for c in failed], [c.fix for c in failed])
    return checks


# A service built of its own has no check_command: the "imports" section tells whether its image is a Python one.
PYTHON_PROBE = ["sh", "-c", "command -v python3 || command -v python"]


def judge_service(sections: dict[str, Ran], workdir: str) -> Iterator[Check]:
    """A service's own image: non-root and no env file always; no bytecode under its WORKDIR when it is a Python
    image (the whole filesystem would find the interpreter's own)."""
    python = sections["imports"].exit_status == 0
    bytecode = sections["bytecode"]
    if not python:
        yield Check("no bytecode", True, "not a Python image")
    elif workdir in ("", "/"):
        yield Check("no bytecode", True, "Python image without a WORKDIR to search")
    else:
        yield check_bytecode(bytecode.exit_status, bytecode.stdout, workdir)
    yield check_user(sections["user"].exit_status, sections["user"].stdout)
    yield check_no_env(sections["env"].exit_status, sections["env"].stdout)


def run_service_checks(target: Target, settings: Settings, image: str, revision: str) -> Iterator[Check]:
    inspected = target.probe(docker.image_inspect(image, "{{json .Config}}"))
    if not inspected.ok:
        yield Check("image exists", False, f"{image} not found on {target.name}; run `inv build` first", fix=BUILD_FIRST)
        return
    config = json.loads(inspected.stdout or "null") or {}
    yield check_revision(config.get("Labels"), revision)
    workdir = str(config.get("WorkingDir") or "")
    marker = uuid.uuid4().hex
    ran = target.probe(verify_cmd.in_one_container(image, marker, workdir or "/", _own_env_name(settings),
                                                   PYTHON_PROBE), timeout=CHECK_TIMEOUT)
    sections = parse_sections(ran.stdout, marker)
    if sections is None:
        yield Check("checks ran", False, f"{image} has no `sh` to run the checks in", fix=FIND_FIX)
        return
    yield from judge_service(sections, workdir)


def verify_service_image(target: Target, settings: Settings, service: str, image: str, revision: str,
                         report: Callable[[Check], None] | None = None) -> list[Check]:
    """verify.build for a service with a build of its own; the failure names the service."""
    return _passed(run_service_checks(target, settings, image, revision), f"service {service} ({image})", report)
