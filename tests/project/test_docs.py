"""The docs keep up with the code: every task, flag, error, message, setting and variable is documented, every
command the docs show exists, and every link lands.

Tasks and errors are discovered from the code itself (the task collection, the DeployError family, the raise
statements under droplet_deploy/), so a new task or error without docs fails here.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import DOCS, REPO

TASKS_MD = DOCS / "tasks.md"
TROUBLESHOOTING_MD = DOCS / "troubleshooting.md"
CONFIGURATION_MD = DOCS / "configuration.md"
ENVIRONMENT_MD = DOCS / "environment-variables.md"
RUNBOOK_MD = DOCS / "DEPLOYMENT-RUNBOOK.md"
README = REPO / "README.md"


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# --- a little markdown ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    line: int


def lines_outside_code(text: str) -> Iterator[tuple[int, str]]:
    fence = None
    for number, line in enumerate(text.splitlines()):
        marker = re.match(r"\s*(```|~~~)", line)
        if marker:
            fence = None if fence == marker.group(1) else (fence or marker.group(1))
            continue
        if fence is None:
            yield number, line


def headings(text: str) -> list[Heading]:
    found = []
    for number, line in lines_outside_code(text):
        match = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            found.append(Heading(len(match.group(1)), match.group(2), number))
    return found


def section(text: str, heading: Heading) -> str:
    """The heading's line and everything under it up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    following = [h.line for h in headings(text) if h.line > heading.line and h.level <= heading.level]
    return "\n".join(lines[heading.line: following[0] if following else len(lines)])


def table_rows(text: str) -> list[str]:
    return [line for _, line in lines_outside_code(text) if line.lstrip().startswith("|")]


def slug(heading_text: str) -> str:
    """GitHub's anchor for a heading."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading_text)
    return re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(text):
        base = slug(heading.text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def normalize(text: str) -> str:
    return " ".join(text.split()).lower()


def name_pattern(name: str) -> re.Pattern[str]:
    """``name`` as a whole word: `deploy.status` matches, `deploy.status-all` and `xdeploy.status` do not."""
    return re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)")


# --- tasks --------------------------------------------------------------------------------------------------


def collection():
    from droplet_deploy.tasks import ns

    return ns


def task_flags(task) -> dict[str, object]:
    """Long flag name (``allow-dirty``) -> invoke Argument, plus every short and inverse form for parsing."""
    flags: dict[str, object] = {}
    for argument in task.get_arguments():
        for name in argument.names:
            flags[name] = argument
        if argument.kind is bool:
            flags[f"no-{argument.names[0]}"] = argument
    return flags


TASK_NAMES = sorted(collection().task_names)


def task_entry(name: str) -> str | None:
    """The docs of task ``name`` in tasks.md: its heading's section, or its table row."""
    text = TASKS_MD.read_text()
    for heading in headings(text):
        if name_pattern(f"inv {name}").search(heading.text):
            return section(text, heading)
    for row in table_rows(text):
        first_cell = row.strip().strip("|").split("|")[0]
        if name_pattern(name).search(first_cell):
            return row
    return None


def test_tasks_are_discovered_from_the_collection():
    assert {"build", "verify.build", "health.wait", "deploy.test", "deploy.prod"} <= set(TASK_NAMES)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_and_each_of_its_flags_is_in_the_task_reference(name):
    entry = task_entry(name)
    assert entry is not None, f"{name}: add a `### inv {name}` section (or a table row) to docs/tasks.md"
    task = collection()[name]
    for argument in task.get_arguments():
        flag = f"--{argument.names[0]}"
        assert re.search(rf"{re.escape(flag)}(?![\w-])", entry), f"{name}: docs/tasks.md does not explain {flag}"


def test_the_task_reference_documents_no_task_that_does_not_exist():
    known = set(TASK_NAMES)
    for heading in headings(TASKS_MD.read_text()):
        match = re.match(r"`?inv ([\w.-]+)", heading.text)
        if match:
            assert match.group(1) in known, f"docs/tasks.md documents `inv {match.group(1)}`, which does not exist"


# --- every inv command the docs show exists, with flags it has ----------------------------------------------

CORE_FLAGS_WITH_VALUE = {"f", "config", "c", "collection", "r", "search-root", "w", "write-pyc", "complete"}
# A command line: optional prompt, VAR=value assignments and a path, then `inv` and its arguments.
COMMAND_RE = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:[\w./-]*/)?inv\s+(.*)$")


def inv_commands(text: str) -> Iterator[str]:
    """The argument lists of `inv ...` commands shown in code blocks (one per line) and in inline code."""
    fence = None
    for line in text.splitlines():
        marker = re.match(r"\s*(```|~~~)", line)
        if marker:
            fence = None if fence == marker.group(1) else (fence or marker.group(1))
            continue
        candidates = [line] if fence is not None else re.findall(r"`([^`]+)`", line)
        for candidate in candidates:
            for command in re.split(r"\s*(?:&&|\|\||;)\s*", candidate.strip()):
                match = COMMAND_RE.match(command.strip())
                if match:
                    yield match.group(1)


def check_command(arguments: str) -> list[str]:
    """Problems with one `inv` command line: unknown tasks, or flags the task does not have."""
    ns = collection()
    aliases = {alias: name for name, names in ns.task_names.items() for alias in names}
    try:
        words = shlex.split(arguments, comments=True)
    except ValueError:
        return [f"cannot parse: inv {arguments}"]
    problems: list[str] = []
    task = task_name = None
    positional: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("|", "||", "&&", ";") or word.startswith((">", "2>", "|")):
            break
        if word.startswith("-"):
            flag = word.lstrip("-").split("=", 1)[0]
            if task is None:
                index += 1 if flag in CORE_FLAGS_WITH_VALUE and "=" not in word else 0
            else:
                argument = task_flags(task).get(flag)
                if argument is None:
                    problems.append(f"inv {task_name} has no flag {word.split('=')[0]}")
                    break  # whether it takes a value is unknown: the rest cannot be read reliably
                if argument.kind is not bool and "=" not in word and not flag.startswith("no-"):
                    index += 1
        elif task is not None and positional:
            positional.pop(0)
        elif re.fullmatch(r"<[^>]+>|\.\.\.", word):
            break  # a placeholder for any task, as in `inv --help <task>`
        else:
            task_name = aliases.get(word, word)
            if task_name not in ns.task_names:
                problems.append(f"no task {word!r}")
                break  # its flags are unknown: the rest cannot be read reliably
            else:
                task = ns[task_name]
                positional = [a.names[0] for a in task.get_arguments() if a.positional]
        index += 1
    return problems


def test_the_command_checker_catches_unknown_tasks_and_flags():
    assert check_command("deploy.prod --host prod") == []
    assert check_command("--dry deploy.prod --host prod") == []
    assert check_command("build verify.build") == []
    assert check_command("deploy.nope") == ["no task 'deploy.nope'"]
    assert check_command("deploy.test --host prod") == ["inv deploy.test has no flag --host"]


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_inv_command_in_the_docs_exists(doc):
    problems = [f"`inv {command}`: {problem}" for command in inv_commands(doc.read_text())
                for problem in check_command(command)]
    assert problems == [], "\n".join(problems)


# --- errors -------------------------------------------------------------------------------------------------


def error_classes() -> list[type]:
    from droplet_deploy.core.errors import DeployError

    found, todo = [], [DeployError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return sorted(found, key=lambda cls: cls.__name__)


ERRORS = [cls.__name__ for cls in error_classes()]


def error_section(name: str) -> str | None:
    text = TROUBLESHOOTING_MD.read_text()
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for heading in headings(text):
        if heading.level >= 2 and pattern.search(heading.text):
            return section(text, heading)
    return None


def test_errors_are_discovered_from_the_deploy_error_family():
    assert {"ConfigError", "LockHeld", "HealthTimeout", "VerifyFailed", "CommandFailed"} <= set(ERRORS)


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_has_a_troubleshooting_section_with_cause_and_fix(name):
    body = error_section(name)
    assert body is not None, f"{name}: add a `## {name} — ...` section to docs/troubleshooting.md"
    lowered = body.lower()
    assert "cause" in lowered and "fix" in lowered, f"{name}: say the cause and the fix"
    assert "error: " in body, f"{name}: show the message as users see it (`error: ...`)"


@dataclass(frozen=True)
class Raised:
    error: str
    fragment: str
    where: str


def _literal_parts(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [part.value for part in node.values if isinstance(part, ast.Constant) and isinstance(part.value, str)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_parts(node.left) + _literal_parts(node.right)
    return []


def _fragment(node: ast.expr) -> str | None:
    """The longest fixed piece of a message, trimmed of punctuation; None when it is too short to be telling."""
    parts = [re.sub(r"^[^\w`]+|[^\w`]+$", "", part).strip() for part in _literal_parts(node)]
    parts = [p for p in parts if len(p) >= 8]
    return max(parts, key=len) if parts else None


def raised_messages() -> list[Raised]:
    """Every `SomeDeployError("message ...")` under droplet_deploy/ (raised, or built and returned to be raised): its class
    and the message's fixed text."""
    names = set(ERRORS)
    found = []
    for path in sorted((REPO / "droplet_deploy").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in names or not node.args:
                continue
            # ConfigError(key, problem, fix): the problem is the message users look for.
            message = node.args[1] if name == "ConfigError" and len(node.args) > 1 else node.args[0]
            fragment = _fragment(message)
            if fragment:
                found.append(Raised(name, fragment, f"{path.relative_to(REPO)}:{node.lineno}"))
    return found


RAISED = raised_messages()


def test_messages_are_discovered_from_the_raise_statements():
    assert any(r.error == "LockHeld" and "another deploy is running" in r.fragment for r in RAISED)


@pytest.mark.parametrize("raised", RAISED, ids=lambda r: f"{r.error}:{r.fragment[:40]}")
def test_every_message_the_tool_raises_is_explained_under_its_error(raised):
    body = error_section(raised.error) or ""
    assert normalize(raised.fragment) in normalize(body), (
        f"{raised.where}: docs/troubleshooting.md, section {raised.error}, does not show {raised.fragment!r}")


def reported_details() -> list[Raised]:
    """What checks report when they fail: verify.build checks (``Check(name, ok, detail)``), backup checks (the
    same, under droplet_deploy/backup/), preflight items (``Item(...)``) and health verdicts (``Verdict(False, reason)``),
    each under the error that carries it."""
    found = []
    for path in sorted((REPO / "droplet_deploy").rglob("*.py")):
        backup = "backup" in path.relative_to(REPO).parts
        owners = {"Check": "BackupInvalid" if backup else "VerifyFailed", "Item": "PreflightFailed"}
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            args = node.args
            failing = len(args) >= 2 and isinstance(args[1], ast.Constant) and args[1].value is False
            if node.func.id in owners and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                found.append(Raised(owners[node.func.id], args[0].value, where))
                if failing and len(args) >= 3 and _fragment(args[2]):
                    found.append(Raised(owners[node.func.id], _fragment(args[2]), where))
            elif node.func.id == "Verdict" and isinstance(args[0], ast.Constant) and args[0].value is False:
                # A final verdict (an answer that can never become valid) ends the wait as HealthRejected.
                final = any(k.arg == "final" and isinstance(k.value, ast.Constant) and k.value.value is True
                            for k in node.keywords)
                if len(args) >= 2 and _fragment(args[1]):
                    found.append(Raised("HealthRejected" if final else "HealthTimeout", _fragment(args[1]), where))
    return sorted(set(found), key=lambda r: (r.error, r.fragment))


DETAILS = reported_details()


def test_check_names_and_failure_details_are_discovered():
    assert any(d.error == "VerifyFailed" and d.fragment == "no bytecode" for d in DETAILS)
    assert any(d.error == "HealthTimeout" and d.fragment.startswith("still serving revision") for d in DETAILS)


@pytest.mark.parametrize("detail", DETAILS, ids=lambda d: f"{d.error}:{d.fragment[:40]}")
def test_every_check_and_what_it_reports_when_it_fails_is_explained(detail):
    body = error_section(detail.error) or ""
    assert normalize(detail.fragment) in normalize(body), (
        f"{detail.where}: docs/troubleshooting.md, section {detail.error}, does not explain {detail.fragment!r}")


def test_the_ctrl_c_message_is_explained():
    assert "interrupted: the deploy lock was released" in TROUBLESHOOTING_MD.read_text()


# --- configuration ------------------------------------------------------------------------------------------


def config_fields() -> dict[str, tuple[str, object]]:
    from droplet_deploy.core.config_keys import FIELDS

    return dict(FIELDS)


def shown_default(default: object) -> list[str]:
    """What a config table row must show for the default: the value itself, each list item."""
    if isinstance(default, bool):
        return [str(default).lower()]
    if isinstance(default, float):
        return [f"{default:g}"]
    if isinstance(default, (int, str)):
        return [str(default)]
    if isinstance(default, list):
        return [str(item) for item in default]
    return []


@pytest.mark.parametrize("key", sorted(config_fields()))
def test_every_config_key_is_documented_with_its_type_and_default(key):
    rows = [row for row in table_rows(CONFIGURATION_MD.read_text()) if f"`{key}`" in row.split("|")[1]]
    assert rows, f"docs/configuration.md: add a table row for `{key}`"
    kind, default = config_fields()[key]
    row = rows[0]
    assert kind in row, f"`{key}`: say its type ({kind})"
    for shown in shown_default(default):
        assert shown in row, f"`{key}`: show its default ({shown})"


def test_configuration_explains_per_environment_overrides():
    text = CONFIGURATION_MD.read_text()
    assert "deploy.environments." in text and "default_env" in text


# --- the app's environment variables ------------------------------------------------------------------------


def app_variables() -> set[str]:
    """APP_* variables the reference app reads: its declared settings, plus any read straight from os.environ."""
    from app.config import SETTINGS

    names = {setting.name for setting in SETTINGS}
    read = re.compile(r"""(?:environ(?:\.get)?[\[(]|getenv\()\s*["'](APP_[A-Z0-9_]+)["']""")
    for path in (REPO / "app").rglob("*.py"):
        names |= set(read.findall(path.read_text()))
    return names


APP_VARIABLES = sorted(app_variables())


def test_app_variables_are_discovered():
    assert {"APP_REVISION", "APP_SECRET_KEY", "APP_PORT"} <= set(APP_VARIABLES)


@pytest.mark.parametrize("name", APP_VARIABLES)
def test_every_app_variable_is_documented_and_in_the_env_example(name):
    rows = [row for row in table_rows(ENVIRONMENT_MD.read_text()) if name_pattern(name).search(row.split("|")[1])]
    assert rows, f"docs/environment-variables.md: add a row for {name}"
    assert name_pattern(name).search((REPO / ".env.example").read_text()), f".env.example: add {name}"
    from app.config import is_secret_name

    if is_secret_name(name):
        assert "secret" in rows[0].lower(), f"docs/environment-variables.md: say that {name} is a secret"


# --- README and links ---------------------------------------------------------------------------------------


def test_the_readme_first_screen_has_the_two_fresh_machine_commands():
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    assert "scripts/demo" in first_screen and "scripts/test" in first_screen


def test_the_runbook_covers_what_an_operator_needs():
    titles = " / ".join(h.text.lower() for h in headings(RUNBOOK_MD.read_text()))
    for topic in ("standard deploy", "hotfix", "test environment", "rollback", "monitoring", "checklist", "ci/cd"):
        assert topic in titles, f"docs/DEPLOYMENT-RUNBOOK.md: add a section on {topic}"


def links(text: str) -> Iterator[str]:
    for _, line in lines_outside_code(text):
        line = re.sub(r"`[^`]*`", "", line)
        yield from re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)
        yield from re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_lands(doc):
    broken = []
    for target in links(doc.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    assert broken == [], f"{doc.relative_to(REPO)}: " + "; ".join(broken)
