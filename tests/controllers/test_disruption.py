"""The Model's PodDisruptionBudget follows spec and the stable revision, writing only on change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelship.api.model import ModelSpec
from modelship.controllers.disruption import PDB, ensure_pdb
from modelship.controllers.runtime import Context
from modelship.k8s.client import resource
from modelship.settings import OperatorSettings

UID = "0f0e0d0c-0000-4000-8000-000000000001"
BODY = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model",
        "metadata": {"name": "iris", "namespace": "ml", "uid": UID}}


class FakeKube:
    """The few calls ensure_pdb makes, against a dict of objects; records the writes."""

    def __init__(self, objects: dict[str, dict[str, Any]] | None = None) -> None:
        self.objects = copy.deepcopy(objects or {})
        self.writes: list[tuple[str, Any]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get(name))

    def create_or_get(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.writes.append(("create", obj["spec"]))
        self.objects[obj["metadata"]["name"]] = copy.deepcopy(obj)
        return obj, True

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("patch", patch["spec"]))
        spec = self.objects[name]["spec"]
        for key, value in patch["spec"].items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        return self.objects[name]

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(("delete", name))
        return self.objects.pop(name, None) is not None


def _spec(budget: dict[str, Any] | None) -> ModelSpec:
    serving = {"podDisruptionBudget": budget} if budget is not None else {}
    return ModelSpec.model_validate({"source": {"uri": "s3://b/m.onnx"}, "serving": serving})


def _pdb(revision: str, owner_uid: str = UID, **bounds: Any) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "ownerReferences": [{"uid": owner_uid}]},
            "spec": {"selector": {"matchLabels": {"modelship.io/model": "iris", "modelship.io/revision": revision}},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow", **bounds}}


CASES = [
    # (case, existing PDB, spec budget, stable revision, writes, spec after)
    ("created-on-first-stable", None, {}, "iris-a", ["create"], _pdb("iris-a", maxUnavailable=1)["spec"]),
    ("no-write-when-it-matches", _pdb("iris-a", maxUnavailable=1), {}, "iris-a", [], None),
    ("moves-to-the-promoted-revision", _pdb("iris-a", maxUnavailable=1), {}, "iris-b", ["patch"],
     _pdb("iris-b", maxUnavailable=1)["spec"]),
    ("switches-bound", _pdb("iris-a", maxUnavailable=1), {"minAvailable": "50%"}, "iris-a", ["patch"],
     _pdb("iris-a", minAvailable="50%")["spec"]),
    ("deleted-when-the-field-goes", _pdb("iris-a", maxUnavailable=1), None, "iris-a", ["delete"], None),
    ("none-before-a-stable-exists", None, {}, None, [], None),
    ("someone-else's-pdb-is-left-alone", _pdb("iris-a", owner_uid="other", maxUnavailable=1), None, "iris-a",
     [], None),
]


@pytest.mark.parametrize(("case", "existing", "budget", "stable", "writes", "after"), CASES,
                         ids=[c[0] for c in CASES])
def test_ensure_pdb(case: str, existing: dict[str, Any] | None, budget: dict[str, Any] | None, stable: str | None,
                    writes: list[str], after: dict[str, Any] | None) -> None:
    kube = FakeKube({"iris": existing} if existing else None)
    ctx = Context(settings=OperatorSettings(), kube=kube)  # type: ignore[arg-type]
    ensure_pdb(ctx, BODY, _spec(budget), stable)
    assert [w for w, _ in kube.writes] == writes
    if after is not None:
        assert kube.objects["iris"]["spec"] == after
    # Level-based: a second run with the same inputs writes nothing.
    kube.writes.clear()
    ensure_pdb(ctx, BODY, _spec(budget), stable)
    assert kube.writes == []


def test_the_client_knows_the_resource() -> None:
    assert resource(*PDB).base("ml") == "/apis/policy/v1/namespaces/ml/poddisruptionbudgets"
