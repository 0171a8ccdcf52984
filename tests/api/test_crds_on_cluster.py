"""The same invalid specs and examples, judged by a real API server (--dry-run=server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_crds import BASE, INVALID, _set, documents

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds_installed(local_cluster: Any) -> Any:
    local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("models", "trainingjobs", "driftmonitors"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.modelship.io", "--timeout=60s")
    return local_cluster


def dry_run(cluster: Any, doc: dict[str, Any]) -> Any:
    return cluster.kubectl("apply", "-n", "default", "--dry-run=server", "-f", "-", stdin=json.dumps(doc), check=False)


@pytest.mark.parametrize(("case", "kind", "field", "value", "expect"), INVALID, ids=[c[0] for c in INVALID])
def test_api_server_refuses_invalid_specs(crds_installed: Any, case: str, kind: str, field: str, value: Any,
                                          expect: str) -> None:
    doc = _set(BASE[kind], field, value)
    if case == "regression-with-accuracy":
        doc["spec"]["metric"] = "accuracy"
    res = dry_run(crds_installed, doc)
    assert res.returncode != 0, f"{case}: the API server accepted it"
    words = [w.strip('"') for w in expect.replace(":", " ").split() if len(w) > 3][:3]
    assert all(w in res.stderr for w in words), res.stderr


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_api_server_accepts_the_examples(crds_installed: Any, where: str, doc: dict[str, Any]) -> None:
    res = dry_run(crds_installed, doc)
    assert res.returncode == 0, res.stderr


def test_explain_and_printer_columns(crds_installed: Any) -> None:
    explained = crds_installed.kubectl("explain", "model.spec.rollout.steps").stdout
    assert "strictly" in explained or "weight" in explained
    out = crds_installed.kubectl("get", "modelship", "-A").stdout + crds_installed.kubectl("get", "mdl", "-A").stderr
    assert "error" not in out.lower()
