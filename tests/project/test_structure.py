"""The shape of droplet_deploy/: its packages are layers and imports only run down them (no cycle, no import
tucked into a function to dodge the order), docs/architecture.md names every package, and no function grows past
a cyclomatic complexity of 15 (as radon counts it: `radon cc -n C droplet_deploy` lists the largest).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from radon.complexity import cc_visit

from .helpers import REPO

PACKAGE = REPO / "droplet_deploy"
ROOT = "droplet_deploy"
MAX_COMPLEXITY = 15

# The layers, top first: a module may import its own package's modules and those of the layers below it, never a
# layer above, nor a sibling package of its own layer. A name is a package (every module under it) or a module.
LAYERS: list[tuple[str, ...]] = [
    ("__main__",),  # python -m droplet_deploy
    ("cli",),  # the droplet-deploy command: init, doctor, notify, --version
    ("tasks", "notify"),  # the Invoke tasks; the post_deploy notification
    ("setup", "operations"),  # init and doctor; day two on a deployed environment
    ("pipeline",),  # the changes that put a release in service: deploy, rollback
    ("backup",),
    ("front",),  # the front proxy shared by every environment on a host: routes by host name, certificates
    ("engines",),  # where a stack runs; open_session chooses one (ordered inside: ENGINE_ORDER)
    ("host",),  # a host over SSH: the connection, its keys, shipping a release
    ("transaction",),  # the frame of every change: lock, history, hooks, the files kept per release
    ("steps",),  # build, verify, health, preflight: each on one target
    ("session",),
    ("transport",),  # where commands run: this machine, or a host over SSH
    ("commands",),  # argv builders, pure
    ("core", ""),  # settings, errors, masking, signals, output; the package root (its version)
]
# Inside engines: the chooser first, then Swarm (it reads the compose model through compose), then compose, then
# what both share.
ENGINE_ORDER = ["engines", "engines.swarm", "engines.compose", "engines.base", "engines.snapshot", "engines.nginx"]

# Imports inside functions that are there for a reason other than the layer order, with that reason.
ALLOWED_LOCAL_IMPORTS = {
    ("droplet_deploy/tasks/config_errors.py", "invoke"): "Invoke's Config is only needed once a config file failed",
    ("droplet_deploy/transport/target.py", "droplet_deploy.transport.tunnel"):
        "paramiko's tunnel machinery loads only when a remote tunnel opens",
    ("droplet_deploy/engines/__init__.py", "droplet_deploy.engines.swarm.backend"):
        "fabric and paramiko load only for a remote backend",
    ("droplet_deploy/engines/__init__.py", "droplet_deploy.engines.compose.ssh"):
        "fabric and paramiko load only for a remote backend",
    ("droplet_deploy/backup/copies.py", "droplet_deploy.host.connect"):
        "fabric and paramiko load only when a backup is copied to another host",
    ("droplet_deploy/backup/copies.py", "boto3"): "the optional s3 extra loads only when a bucket is configured",
    ("droplet_deploy/transport/link.py", "paramiko"): "a local deploy never loads paramiko (0.1 s at start-up)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(f) for f in PACKAGE.rglob("*.py")}


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The modules ``from X import a, b`` depends on: ``X.a`` where that is a submodule, else ``X`` itself."""
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([node.module] if node.module else []))
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in MODULES else base for name in names]


def imports(path: Path, *, top_level_only: bool) -> list[tuple[str, ast.AST]]:
    tree = ast.parse(path.read_text())
    module, is_package = module_name(path), path.name == "__init__.py"
    found = []
    nodes = [n for n in tree.body if not _type_checking_block(n)] if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(name, node) for name in resolve(module, is_package, node)]
    return found


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


# A task's body imports what it runs, so `inv --list` (and any one task) loads only the task tree and what that task
# needs; those imports still follow the layer order (the graph reads them too).
LAZY_PACKAGE = "droplet_deploy/tasks/"


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        top_only = not path.relative_to(REPO).as_posix().startswith(LAZY_PACKAGE)
        edges[source] = {name for name, _ in imports(path, top_level_only=top_only)
                         if name in MODULES and name != source}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def place(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module: the unit is the layer entry it belongs to (a package or a module)."""
    rel = module[len(ROOT) + 1:] if module != ROOT else ""
    for index, names in enumerate(LAYERS):
        for name in names:
            if rel == name or (name and rel.startswith(name + ".")) or (name == "" and rel == ""):
                return index, name
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to one")


def engine_rank(module: str) -> int:
    rel = module[len(ROOT) + 1:]
    return max(i for i, name in enumerate(ENGINE_ORDER) if rel == name or rel.startswith(name + "."))


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import that runs up the layers, or sideways into a sibling package of the same layer."""
    found = []
    for source, targets in sorted(edges.items()):
        (layer, unit) = place(source)
        for target in sorted(targets):
            (to_layer, to_unit) = place(target)
            if to_layer > layer:
                continue
            if to_layer < layer or to_unit != unit:
                found.append(f"{source} -> {target}")
            elif unit == "engines" and engine_rank(target) < engine_rank(source):
                found.append(f"{source} -> {target} (engines: {ENGINE_ORDER})")
    return found


def test_the_import_graph_has_no_cycle():
    edges = graph()
    assert len(edges) > 30 and f"{ROOT}.engines.compose.rollout" in edges[f"{ROOT}.engines.compose.backend"], \
        "the graph is read"
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_imports_only_run_down_the_layers():
    assert upward(graph()) == []


def test_the_layer_check_finds_an_import_that_runs_up():
    edges = {f"{ROOT}.steps.health": {f"{ROOT}.pipeline.deploy"}, f"{ROOT}.setup.init": {f"{ROOT}.operations.status"},
             f"{ROOT}.engines.compose.stack": {f"{ROOT}.engines.swarm.state"},
             f"{ROOT}.engines.swarm.backend": {f"{ROOT}.engines.compose.stack", f"{ROOT}.core.errors"}}
    assert upward(edges) == [
        f"{ROOT}.engines.compose.stack -> {ROOT}.engines.swarm.state (engines: {ENGINE_ORDER})",
        f"{ROOT}.setup.init -> {ROOT}.operations.status",
        f"{ROOT}.steps.health -> {ROOT}.pipeline.deploy",
    ]


def test_every_module_sits_in_a_layer():
    for module in MODULES:
        place(module)


def test_no_import_hides_inside_a_function():
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(func):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else resolve(module_name(path), path.name == "__init__.py", node)[:1])
                rel = path.relative_to(REPO).as_posix()
                if rel.startswith(LAZY_PACKAGE):
                    continue
                for name in names:
                    local = name in MODULES or name.split(".")[0] == ROOT
                    if (rel, name) not in ALLOWED_LOCAL_IMPORTS and (local or name not in _STDLIB_OK):
                        hidden.append(f"{rel}:{node.lineno} imports {name} inside {func.name}()")
    assert hidden == []


# Standard-library modules a function may import for itself (cheap, and only on an error path).
_STDLIB_OK = {"re", "difflib", "shlex"}


def test_no_function_is_more_complex_than_the_bound():
    too_complex = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for block in cc_visit(path.read_text()):
            if block.complexity > MAX_COMPLEXITY:
                too_complex.append(f"{path.relative_to(REPO)}:{block.lineno} {block.name} {block.complexity}")
    assert too_complex == []


def documented_layout() -> list[str]:
    """The paths docs/architecture.md lists in its layout block, one per line (``droplet_deploy/tasks/``)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layout -->", 2)[1]
    return re.findall(r"^(droplet_deploy/\S+)", block, re.MULTILINE)


def actual_layout() -> list[str]:
    """Every package (``droplet_deploy/engines/compose/``) and every module outside a subpackage."""
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(REPO).as_posix()
        if path.is_dir() and (path / "__init__.py").is_file():
            found.append(rel + "/")
        elif path.suffix == ".py" and path.parent == PACKAGE and path.name != "__init__.py":
            found.append(rel)
    return found


def test_the_architecture_doc_names_every_package_once_and_nothing_else():
    documented = documented_layout()
    assert len(documented) == len(set(documented)), "a package is listed twice"
    assert sorted(documented) == sorted(actual_layout())
