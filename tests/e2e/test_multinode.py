"""Placement across nodes, as KServe and Argo Rollouts users expect it: a revision's
serving pods spread over nodes, the trainer and the server on different nodes
reading the same S3 artifact, and the stable revision's PodDisruptionBudget
following promotions. On a one-node cluster (the local one) the same tests
check what is rendered and that it still schedules; on kind's three nodes they
check where the pods land."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from helpers import dataset, model_manifest

from conftest import S3, Namespace, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("model", name) or {}).get("status") or {})


def schedulable_nodes(ns: Namespace) -> list[str]:
    nodes = ns.cluster.kubectl("get", "nodes", "-o", "json")
    out = []
    for node in json.loads(nodes.stdout)["items"]:
        taints = (node.get("spec") or {}).get("taints") or []
        if not any(t.get("effect") == "NoSchedule" for t in taints):
            out.append(node["metadata"]["name"])
    return out


def ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def test_serving_pods_spread_and_the_trainer_runs_apart_from_a_server(namespace: Namespace, s3: S3) -> None:
    nodes = schedulable_nodes(namespace)
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=71))
    namespace.apply(model_manifest("spread", uri))
    # The trainer pod's node, seen while its Job runs (finished Jobs' pods may be cleaned up).
    trainer_node = wait_until(
        lambda: next((p["spec"]["nodeName"] for p in namespace.list("pod", "job-name=spread-1")
                      if (p.get("spec") or {}).get("nodeName")), None), 300, "the trainer pod's node")
    st = wait_until(lambda: (s := status(namespace, "spread")).get("phase") == "Serving" and s, 420,
                    "the Model to serve", 2)
    pods = namespace.list("pod", f"modelship.io/revision={st['stableRevision']}")
    assert len(pods) == 2 and all(ready(p) for p in pods), [p["metadata"]["name"] for p in pods]
    # In the pod template (so in the revision's hash): the revision's own pods, counted through
    # matchLabelKeys (the template cannot name the revision: the revision is its hash).
    deployment = namespace.get("deployment", st["stableRevision"])
    assert deployment is not None
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread == [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                       "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "modelship-serving"}},
                       "matchLabelKeys": ["modelship.io/revision"]}]
    # The pods carry it (the API server may also have merged the revision into their selector).
    assert all(p["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname" for p in pods)
    placed = sorted(p["spec"]["nodeName"] for p in pods)
    print(f"schedulable nodes {nodes}; trainer on {trainer_node}; serving pods on {placed}")
    if len(nodes) >= 2:
        # Two replicas on two nodes; so at least one server runs on a node the trainer did not,
        # and it loaded the artifact from S3 (Ready means fetched and its sha256 checked).
        assert len(set(placed)) == 2, placed
        assert any(node != trainer_node for node in placed), (trainer_node, placed)
    else:
        assert set(placed) == set(nodes)  # ScheduleAnyway: one node still takes both


def test_the_stable_revision_has_a_disruption_budget_that_follows_promotion(namespace: Namespace, s3: S3) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=72))
    manifest = model_manifest("budget", uri, rollout={"strategy": "Recreate", "steps": []})
    manifest["spec"]["serving"]["podDisruptionBudget"] = {"maxUnavailable": 1}
    namespace.apply(manifest)
    first = wait_until(lambda: (s := status(namespace, "budget")).get("phase") == "Serving"
                       and s["stableRevision"], 420, "the Model to serve", 2)
    pdb = wait_until(lambda: namespace.get("pdb", "budget"), 60, "the PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"]["modelship.io/revision"] == first
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    wait_until(lambda: (namespace.get("pdb", "budget") or {}).get("status", {}).get("disruptionsAllowed") == 1,
               120, "one disruption allowed (2 healthy pods, maxUnavailable 1)")

    # A placement change is a new revision (a different pod template); the budget moves to it.
    # (maxSkew 2: the default written out, maxSkew 1, would be the same template, so no new revision.)
    manifest["spec"]["serving"]["topologySpreadConstraints"] = [
        {"topologyKey": "kubernetes.io/hostname", "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"}]
    manifest["spec"]["serving"]["podDisruptionBudget"] = {"minAvailable": "50%"}
    namespace.apply(manifest)
    second = wait_until(lambda: (s := status(namespace, "budget")).get("stableRevision") not in (None, first)
                        and s["stableRevision"], 300, "the new revision to be stable", 2)
    moved = wait_until(lambda: (p := namespace.get("pdb", "budget")) and
                       p["spec"]["selector"]["matchLabels"]["modelship.io/revision"] == second and p, 120,
                       "the budget on the new stable")
    assert moved["spec"].get("minAvailable") == "50%" and "maxUnavailable" not in moved["spec"]

    # Without the field the budget goes.
    del manifest["spec"]["serving"]["podDisruptionBudget"]
    namespace.apply(manifest)
    wait_until(lambda: namespace.get("pdb", "budget") is None, 120, "the budget to be deleted")
    time.sleep(1)
    assert status(namespace, "budget")["stableRevision"] == second
