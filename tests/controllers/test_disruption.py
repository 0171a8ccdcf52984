"""The Model's PodDisruptionBudget through the controller (observe -> plan -> apply): it follows
the spec and the stable revision, writes only on change, and leaves a budget it does not own alone."""

from __future__ import annotations

from typing import Any

from controllers.world import (
    NS,
    context,
    fresh,
    model,
    ready_deployment,
    reconcile_twice,
    serving_model,
    succeed_training_job,
    writes_of,
)
from modelship.controllers import model as controller
from modelship.controllers.context import Context
from modelship.k8s.client import resource

PDB = ("policy/v1", "PodDisruptionBudget")
RECREATE = {"strategy": "Recreate", "steps": []}


def settle(ctx: Context, passes: int = 6) -> list[tuple[str, str, str]]:
    """Reconcile until a pass writes nothing (Recreate takes a few: scale down, then up); the writes."""
    made: list[tuple[str, str, str]] = []
    for _ in range(passes):
        controller.reconcile(ctx, fresh(ctx, "Model", "m"))
        wrote = writes_of(ctx)
        if not wrote:
            return made
        made += wrote
    raise AssertionError(f"no rest after {passes} passes: {made}")


def serving(ctx: Context, budget: dict[str, Any] | None) -> str:
    """A Model trained, deployed and serving; its stable revision."""
    return serving_model(ctx, serving={"replicas": 2, **({"podDisruptionBudget": budget} if budget is not None else {})},
                         rollout=RECREATE)


def change_serving(ctx: Context, **fields: Any) -> None:
    spec = fresh(ctx, "Model", "m")["spec"]
    ctx.kube.patch("modelship.io/v1alpha1", "Model", NS, "m", {"spec": {"serving": {**spec["serving"], **fields}}})
    writes_of(ctx)


def pdb(ctx: Context) -> dict[str, Any] | None:
    return ctx.kube.get(*PDB, NS, "m")


def test_created_on_the_first_stable_and_none_before() -> None:
    ctx = context()
    ctx.kube.create(model(serving={"replicas": 2, "podDisruptionBudget": {}}, rollout=RECREATE))
    reconcile_twice(ctx)
    succeed_training_job(ctx, "m-1", "a" * 64)
    reconcile_twice(ctx)
    assert pdb(ctx) is None  # no stable yet: nothing to protect
    revision = fresh(ctx, "Model", "m")["status"]["canaryRevision"]
    ready_deployment(ctx, revision)
    made = reconcile_twice(ctx)  # and a third pass writes nothing
    assert ("create", "PodDisruptionBudget", "m") in made
    budget = pdb(ctx)
    assert budget is not None and budget["spec"] == {
        "selector": {"matchLabels": {"modelship.io/model": "m", "modelship.io/revision": revision}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow", "maxUnavailable": 1}
    assert budget["metadata"]["ownerReferences"][0]["uid"] == fresh(ctx, "Model", "m")["metadata"]["uid"]


def test_moves_to_the_promoted_revision_and_switches_its_bound() -> None:
    ctx = context()
    first = serving(ctx, {})
    # A placement change is a new revision; the budget's bound changes in the same edit.
    change_serving(ctx, topologySpreadConstraints=[{"topologyKey": "kubernetes.io/hostname", "maxSkew": 2}],
                   podDisruptionBudget={"minAvailable": "50%"})
    made = settle(ctx)
    second = fresh(ctx, "Model", "m")["status"]["canaryRevision"]
    assert second not in (None, first)
    assert ("patch", "PodDisruptionBudget", "m") in made
    budget = pdb(ctx)
    assert budget is not None and budget["spec"]["selector"]["matchLabels"]["modelship.io/revision"] == first
    assert budget["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in budget["spec"]
    ready_deployment(ctx, second)
    made = settle(ctx)
    assert fresh(ctx, "Model", "m")["status"]["stableRevision"] == second
    assert ("patch", "PodDisruptionBudget", "m") in made
    budget = pdb(ctx)
    assert budget is not None and budget["spec"]["selector"]["matchLabels"]["modelship.io/revision"] == second


def test_deleted_when_the_field_goes() -> None:
    ctx = context()
    serving(ctx, {"maxUnavailable": 1})
    assert pdb(ctx) is not None
    change_serving(ctx, podDisruptionBudget=None)
    assert ("delete", "PodDisruptionBudget", "m") in reconcile_twice(ctx)
    assert pdb(ctx) is None


def test_someone_elses_budget_is_left_alone() -> None:
    ctx = context()
    theirs = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": {"name": "m", "namespace": NS, "labels": {"modelship.io/model": "m"}},
              "spec": {"selector": {"matchLabels": {"team": "a"}}, "maxUnavailable": 3}}
    ctx.kube.add(theirs)
    serving(ctx, {})  # the create meets a 409 and is left; no write, no loop
    budget = pdb(ctx)
    assert budget is not None and budget["spec"] == theirs["spec"]
    change_serving(ctx, podDisruptionBudget=None)
    assert not [w for w in reconcile_twice(ctx) if w[1] == "PodDisruptionBudget"]
    assert pdb(ctx) is not None


def test_the_client_knows_the_resource() -> None:
    assert resource(*PDB).base("ml") == "/apis/policy/v1/namespaces/ml/poddisruptionbudgets"
