"""Status writes: compute the whole status, diff it, patch only on change."""

from __future__ import annotations

from typing import Any

from modelship.k8s.client import Api
from modelship.metrics import API_WRITES

Obj = dict[str, Any]


def merge_patch(old: Obj, new: Obj) -> Obj:
    """The JSON merge patch that turns ``old`` into ``new`` (null removes a key)."""
    patch: Obj = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value != before:
            patch[key] = value
    return patch


def write_status(kube: Api, body: Obj, new_status: Obj) -> bool:
    """Patch the status subresource when it differs from the stored one. True if written."""
    patch = merge_patch(body.get("status") or {}, new_status)
    if not patch:
        return False
    meta = body["metadata"]
    # The status was computed from this resourceVersion: if the object changed since
    # (a write of ours not yet seen, a user's edit), the API server answers 409 and
    # the next reconcile, from the newer object, decides again.
    precondition = {"resourceVersion": meta["resourceVersion"]} if meta.get("resourceVersion") else {}
    kube.patch(body["apiVersion"], body["kind"], meta["namespace"], meta["name"],
               {"metadata": precondition, "status": patch} if precondition else {"status": patch},
               subresource="status")
    API_WRITES.labels("patch", f"{body['kind']}/status").inc()
    return True
