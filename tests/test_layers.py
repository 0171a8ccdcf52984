"""The layering contract (pyproject [tool.importlinter]): api, builders, logic
and the whole data plane import no kopf, no Kubernetes client and none of the
control plane's I/O modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_no_module_imports_itself_in_a_circle() -> None:
    """Within a layer too: a circle (a imports b imports a) makes both one module in disguise."""
    import grimp

    graph = grimp.build_graph("modelship", "modelship_runtime", cache_dir=None)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                circles.append((module, imported))
    assert circles == [], circles


MAX_PLAN_FUNCTION_LINES = 60


def test_planning_functions_are_short() -> None:
    """Issue 17: the controllers' pure side (plans, and the logic they call) is named steps, none
    over ~60 lines (docstring included), so each reads at once and has its own table test."""
    import ast

    src = ROOT / "operator" / "src" / "modelship"
    long = []
    for path in sorted([*(src / "plans").rglob("*.py"), *(src / "logic").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_PLAN_FUNCTION_LINES:
                    long.append(f"{path.relative_to(src)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], long
