"""Placement of a revision's pods (topology spread in the pod template, so in the revision hash)
and the stable revision's PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest

from builders.conftest import Validate
from modelship.api.model import DisruptionBudget, Serving
from modelship.builders.placement import build_pdb
from modelship.builders.serving import build_pod_template, build_serving_deployment, revision_name

SHA = "ab" * 32
REVISION = "iris-0123456789"
# The revision's pods: serving pods, ANDed by the scheduler with the incoming pod's own revision label.
REVISION_PODS = {"labelSelector": {"matchLabels": {"app.kubernetes.io/name": "modelship-serving"}},
                 "matchLabelKeys": ["modelship.io/revision"]}
DEFAULT_SPREAD = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                   **REVISION_PODS}]


def _template(serving: Serving) -> dict[str, Any]:
    return build_pod_template("iris", model_uri="s3://a/ml/iris-3", sha256=SHA, serving=serving, image="reg/serving:1")


@pytest.mark.parametrize(("constraints", "expected"), [
    # unset: the revision's pods spread over nodes, preferred (a single node still schedules them)
    (None, DEFAULT_SPREAD),
    # [] turns spreading off: no field at all
    ([], None),
    # a zone spread, required; the revision's pods are counted when no selector is given
    ([{"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
     [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
       "minDomains": 2, **REVISION_PODS}]),
    # no selector but keys of the user's own: the revision key is added after them
    ([{"topologyKey": "kubernetes.io/hostname", "matchLabelKeys": ["pod-template-hash"]}],
     [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
       "labelSelector": REVISION_PODS["labelSelector"],
       "matchLabelKeys": ["pod-template-hash", "modelship.io/revision"]}]),
    # a selector of the user's own is kept as written
    ([{"topologyKey": "kubernetes.io/hostname", "maxSkew": 2, "labelSelector": {"matchLabels": {"team": "a"}},
       "matchLabelKeys": ["pod-template-hash"], "nodeTaintsPolicy": "Honor"}],
     [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
       "labelSelector": {"matchLabels": {"team": "a"}}, "matchLabelKeys": ["pod-template-hash"],
       "nodeTaintsPolicy": "Honor"}]),
])
def test_topology_spread(validate: Validate, owner: dict[str, Any], constraints: list[dict[str, Any]] | None,
                         expected: list[dict[str, Any]] | None) -> None:
    serving = Serving.model_validate({"topologySpreadConstraints": constraints})
    d = build_serving_deployment("iris", "ml", REVISION, _template(serving), replicas=2, owner=owner)
    validate(d)
    assert d["spec"]["template"]["spec"].get("topologySpreadConstraints") == expected


@pytest.mark.parametrize(("spread", "same_as_unset"), [
    (None, True),
    ([{"topologyKey": "kubernetes.io/hostname"}], True),  # the default written out is the same template
    ([], False),  # spreading turned off is a different pod template
    ([{"topologyKey": "topology.kubernetes.io/zone"}], False),
    ([{"topologyKey": "kubernetes.io/hostname", "maxSkew": 2}], False),
])
def test_topology_spread_is_part_of_the_revision(spread: list[dict[str, str]] | None, same_as_unset: bool) -> None:
    def name(constraints: list[dict[str, str]] | None) -> str:
        return revision_name("iris", _template(Serving.model_validate({"topologySpreadConstraints": constraints})))

    assert (name(spread) == name(None)) is same_as_unset


@pytest.mark.parametrize(("budget", "expected"), [
    ({}, {"maxUnavailable": 1}),
    ({"maxUnavailable": 2}, {"maxUnavailable": 2}),
    ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
    ({"minAvailable": 1}, {"minAvailable": 1}),
    ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
    ({"minAvailable": 0}, {"minAvailable": 0}),
])
def test_pdb(validate: Validate, owner: dict[str, Any], budget: dict[str, Any], expected: dict[str, Any]) -> None:
    pdb = build_pdb("iris", "ml", REVISION, DisruptionBudget.model_validate(budget), owner)
    validate(pdb)
    assert pdb["metadata"]["name"] == "iris" and pdb["metadata"]["namespace"] == "ml"
    assert pdb["metadata"]["labels"]["modelship.io/model"] == "iris"  # the controller lists its children by it
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "Model"
    selector = {"matchLabels": {"modelship.io/model": "iris", "modelship.io/revision": REVISION}}
    assert pdb["spec"] == {"selector": selector, "unhealthyPodEvictionPolicy": "AlwaysAllow", **expected}


@pytest.mark.parametrize("budget", [
    {"minAvailable": 1, "maxUnavailable": 1},  # one or the other
    {"maxUnavailable": -1},
    {"minAvailable": "half"},
    {"maxUnavailable": "50"},
])
def test_pdb_refuses_bad_budgets(budget: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DisruptionBudget.model_validate(budget)
