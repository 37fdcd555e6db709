"""The package's floors: imports (module level and inside functions) point down only, and no module
imports itself back through others (no import loop)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "segzero_plus"

CORE = 0
SAM = 1
DATA = 2
TOP = 3
FLOORS: dict[str, int] = {
    # the numpy core and its small utilities
    "segzero_plus": CORE,
    "prompts": CORE,
    "parsing": CORE,
    "geometry": CORE,
    "rewards": CORE,
    "metrics": CORE,
    "masks": CORE,
    "errors": CORE,
    "lru": CORE,
    "devices": CORE,
    "paths": CORE,
    "visualize": CORE,
    "model_folders": CORE,
    # SAM2 services on the core alone
    "sam": SAM,
    # datasets (may use sam/) and their checked CLI argument types
    "data": DATA,
    "arguments": DATA,
    # adapters and applications
    "train": TOP,
    "evaluation": TOP,
    "reporting": TOP,
    "verl_reward": TOP,
    "testing": TOP,
    "demo": TOP,
    "cli": TOP,
}
"""Floor of each top-level module or subpackage of ``segzero_plus`` (a new one must be placed here)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the ``segzero_plus`` modules it imports anywhere in its source."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            found |= {t for t in targets if t in paths and t != name}
        graph[name] = found
    return graph


def _floor(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    assert key in FLOORS, f"{module}: place segzero_plus.{key} on a floor in FLOORS"
    return FLOORS[key]


def test_imports_point_down_only():
    upward = [
        f"{module} (floor {_floor(module)}) imports {target} (floor {_floor(target)})"
        for module, targets in sorted(_imports().items())
        for target in sorted(targets)
        if _floor(target) > _floor(module)
    ]
    assert not upward, "\n".join(upward)


def test_there_is_no_import_loop():
    graph = _imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    loops: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                loops.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not loops, "\n".join(" -> ".join(loop) for loop in loops)


def test_the_checks_see_real_edges():
    """The graph is the package's: known edges are found, including imports inside functions."""
    graph = _imports()
    assert "segzero_plus.data.training" in graph["segzero_plus.data.refer_training"]
    assert "segzero_plus.sam.scorer" in graph["segzero_plus.sam.mining"]  # imported inside a function
    assert _floor("segzero_plus.rewards.total") == CORE and _floor("segzero_plus.data.mining") == DATA
