"""The shape of deploy/: imports flow one way (no cycle, no import tucked into a function to dodge one), and no
function grows past a cyclomatic complexity of 15 (as radon counts it: `radon cc -n C deploy` lists the largest).
"""

from __future__ import annotations

import ast
from pathlib import Path

from radon.complexity import cc_visit

from .helpers import REPO

PACKAGE = REPO / "deploy"
MAX_COMPLEXITY = 15
# Imports inside functions that are there for a reason other than the layer order, with that reason.
ALLOWED_LOCAL_IMPORTS = {
    ("deploy/tasks/config_errors.py", "invoke"): "Invoke's Config is only needed once a config file failed",
    ("deploy/target.py", "deploy.tunnel"): "paramiko's tunnel machinery loads only when a remote tunnel opens",
    ("deploy/backend/__init__.py", "deploy.backend.swarm"): "fabric and paramiko load only for a remote backend",
    ("deploy/backend/__init__.py", "deploy.backend.ssh"): "fabric and paramiko load only for a remote backend",
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


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        edges[source] = {name for name, _ in imports(path, top_level_only=True) if name in MODULES and name != source}
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


def test_the_import_graph_of_deploy_has_no_cycle():
    edges = graph()
    assert len(edges) > 30 and "deploy.rollout" in edges["deploy.backend.compose"], "the graph is read"
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


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
                for name in names:
                    local = name in MODULES or name.split(".")[0] == "deploy"
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
