"""A Model's PodDisruptionBudget ``<model>``: kept on the stable revision while
``spec.serving.podDisruptionBudget`` asks for one, moved to the new stable on
promotion, removed when the field goes (only if the Model owns it)."""

from __future__ import annotations

from typing import Any

from modelship.api.model import ModelSpec
from modelship.builders.serving import build_pdb
from modelship.controllers.metrics import API_WRITES
from modelship.controllers.runtime import Context

PDB = ("policy/v1", "PodDisruptionBudget")
BOUNDS = ("minAvailable", "maxUnavailable")


def _owned(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def ensure_pdb(ctx: Context, body: dict[str, Any], spec: ModelSpec, stable: str | None) -> None:
    """Create, update or delete the Model's PDB; no write when it already matches."""
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    budget = spec.serving.pod_disruption_budget
    existing = ctx.kube.get(*PDB, namespace, name)
    if budget is None or stable is None:
        if existing is not None and _owned(existing, uid):
            ctx.kube.delete(*PDB, namespace, name)
            API_WRITES.labels("delete", "PodDisruptionBudget").inc()
        return
    want = build_pdb(name, namespace, stable, budget, body)
    if existing is None:
        ctx.kube.create_or_get(want)
        API_WRITES.labels("create", "PodDisruptionBudget").inc()
        return
    have = existing.get("spec") or {}
    if all(have.get(k) == v for k, v in want["spec"].items()) and not any(
            k in have and k not in want["spec"] for k in BOUNDS):
        return
    # A merge patch keeps keys it does not name: the bound not wanted is removed explicitly.
    patch = {"spec": {**want["spec"], **{k: None for k in BOUNDS if k not in want["spec"]}}}
    ctx.kube.patch(*PDB, namespace, name, patch)
    API_WRITES.labels("patch", "PodDisruptionBudget").inc()
