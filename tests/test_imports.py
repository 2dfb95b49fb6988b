"""The import arrows of DESIGN.md, read from the source with `ast`: no import circles among gansweep's modules (imports
at module top and inside functions alike), `gan` imports neither Ray, MLflow nor the packages above it, only `sweep`
imports MLflow; and the command line starts without Ray or MLflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gan", "trainables", "search_spaces", "sweep")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(name: str) -> list[tuple[str, int]]:
    """(dotted name, line) of everything module `name` imports, anywhere in it; `from a import b` gives `a.b`, which
    `project_module` maps to `a` when `b` is not a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names] or [(base, node.lineno)]
    return out


def project_module(dotted: str) -> str | None:
    """The gansweep module an import executes last (the longest dotted prefix that is one), or None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return None


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        targets = {project_module(d) for d, _ in imported_names(name)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_package_and_function_level_imports():
    """The reader itself: every package is found, and an import inside a function counts like one at the top."""
    assert {"gan.config", "gan.train", "sweep.execution.driver", "trainables.arm", "search_spaces.space"} <= set(MODULES)
    graph = import_graph()
    assert "gan.augment" in graph["gan.config"]  # from gan.augment import ... (module top)
    assert "trainables.arm" in graph["sweep.execution.driver"]  # from trainables.arm import train_arm (inside _tuner)
    assert "gan.metrics" in graph["sweep.cli.run"]  # from gan.metrics import inception_state_dict: the package
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package,forbidden", [
    ("gan", ("ray", "mlflow", "sweep", "trainables", "search_spaces")),  # the ML library stands alone
    ("trainables", ("mlflow", "sweep", "search_spaces")),
    ("search_spaces", ("mlflow", "sweep", "trainables")),
])
def test_arrows_point_one_way(package, forbidden):
    bad = [f"{name}:{line} imports {dotted}" for name in MODULES if name.split(".")[0] == package
           for dotted, line in imported_names(name) if dotted.split(".")[0] in forbidden]
    assert not bad, bad


def test_the_command_line_starts_without_ray_or_mlflow():
    """`gansweep --help` and every input error are quick: importing the CLI (every command module) and what a dry
    run and the records need brings in neither Ray nor MLflow."""
    code = ("import sys, sweep.cli, sweep.plan, sweep.records, sweep.mlflow.tracker; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
