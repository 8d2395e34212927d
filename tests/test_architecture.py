"""The package's shape: imports run one way (no cycle, even inside functions), and the low layers know
nothing of the loop."""

from __future__ import annotations

import ast
from pathlib import Path

import learnloop

PACKAGE = Path(learnloop.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["learnloop", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, (ast.Name, ast.Attribute)) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The learnloop modules `path` imports anywhere (module level or in functions), TYPE_CHECKING blocks aside."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import nn` imports a module, `from .x import y` a name of x
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    """Module -> the learnloop modules it imports."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_the_walker_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph()
    assert "learnloop.callbacks.schedule" in graph["learnloop.callbacks.tracking"]  # inside tracking.run_params
    assert "learnloop.callbacks.core" in graph["learnloop.callbacks.schedule"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_low_layers_import_nothing_of_the_loop():
    for name, imported in import_graph().items():
        if name.startswith(("learnloop.data", "learnloop.nn", "learnloop.optim", "learnloop.rng")):
            loop = {m for m in imported if m.startswith(("learnloop.learner", "learnloop.callbacks"))}
            assert not loop, f"{name} imports {loop}"


def test_callbacks_never_import_the_learner():
    for name, imported in import_graph().items():
        if name.startswith("learnloop.callbacks"):
            assert "learnloop.learner" not in imported and "learnloop" not in imported, name


def test_core_imports_nothing_of_the_package():
    assert import_graph()["learnloop.callbacks.core"] == set()


def test_the_learner_imports_nothing_of_keras():
    graph = import_graph()
    for name in ("learnloop.learner", "learnloop.dispatch"):
        assert not {m for m in graph[name] if "keras" in m}, name
    assert "keras" not in (PACKAGE / "learner.py").read_text().lower()


def private_imports() -> list[str]:
    """`from M import _name` (or `import M._name`) in any learnloop module, where M is another learnloop module."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("learnloop")):
                names = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [part for alias in node.names if alias.name.startswith("learnloop.")
                         for part in alias.name.split(".")]
            else:
                continue
            found += [f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}" for name in names
                      if name.startswith("_") and not name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_names():
    assert private_imports() == [], "what another module needs must be public and documented"
