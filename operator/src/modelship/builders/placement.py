"""Where a revision's pods run, and how many of them a drain may take.

Spread: a revision's pods spread over nodes by default (a topology spread on
``kubernetes.io/hostname``, maxSkew 1, ScheduleAnyway: preferred, so a
single-node cluster still schedules them), as users of KServe and Argo
Rollouts expect from replicas that should survive a node;
``serving.topologySpreadConstraints`` replaces it. The constraints are part
of the pod template, so the revision hash covers them: a placement change is
a new revision, rolled out like any other.

A constraint counts the revision's pods without naming the revision (the
revision is the template's hash, so the template cannot hold it): it selects
serving pods, and ``matchLabelKeys`` adds the incoming pod's own
``modelship.io/revision`` to that selector (the scheduler ANDs it in). A
shadow's pods carry the same revision label and count with its canary's.

Budget: ``build_pdb`` keeps voluntary evictions (``kubectl drain``, node
upgrades, the cluster autoscaler) from taking the stable revision below
``serving.podDisruptionBudget``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelship.api.model import DisruptionBudget, Serving
from modelship.builders.common import MODEL_LABEL, REVISION_LABEL, Obj, metadata

HOSTNAME_KEY = "kubernetes.io/hostname"
SERVING_APP = {"app.kubernetes.io/name": "modelship-serving"}  # on every serving pod, shadows' too
# A PDB holds one of these; a merge patch keeps the one it does not name, so the other is cleared.
PDB_BOUNDS = ("minAvailable", "maxUnavailable")


def _revision_pods(constraint: Obj) -> Obj:
    """A constraint without a selector counts the pods of the incoming pod's revision."""
    if "labelSelector" in constraint:
        return constraint
    keys = list(constraint.get("matchLabelKeys") or [])
    return {**constraint, "labelSelector": {"matchLabels": dict(SERVING_APP)},
            "matchLabelKeys": keys if REVISION_LABEL in keys else [*keys, REVISION_LABEL]}


def topology_spread(serving: Serving) -> list[Obj]:
    """The pods' topologySpreadConstraints: the Model's (one without a labelSelector counts the
    revision's pods), or one spreading the revision over nodes; ``[]`` turns spreading off."""
    if serving.topology_spread_constraints is None:
        return [_revision_pods({"maxSkew": 1, "topologyKey": HOSTNAME_KEY, "whenUnsatisfiable": "ScheduleAnyway"})]
    return [_revision_pods(c.wire()) for c in serving.topology_spread_constraints]


def build_pdb(model: str, namespace: str, revision: str, budget: DisruptionBudget,
              owner: Mapping[str, Any] | None) -> Obj:
    """PodDisruptionBudget ``<model>`` over the pods of ``revision`` (the stable one).

    ``unhealthyPodEvictionPolicy: AlwaysAllow``: pods that are not ready may always be evicted,
    so a broken revision never blocks a node drain. With neither bound set, maxUnavailable is 1.
    """
    spec: Obj = {"selector": {"matchLabels": {MODEL_LABEL: model, REVISION_LABEL: revision}},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    if budget.min_available is not None:
        spec["minAvailable"] = budget.min_available
    else:
        spec["maxUnavailable"] = budget.max_unavailable if budget.max_unavailable is not None else 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(model, namespace, {MODEL_LABEL: model}, owner),
        "spec": spec,
    }
