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
