"""The DriftMonitor controller against an in-memory API and canned pod answers: it evaluates
when due, writes nothing when not, retrains once, and its window survives an operator restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from controllers.world import NS, context, fresh, model, writes_of
from logic.test_drift_pipeline import METADATA, Pod
from modelship.controllers import driftmonitor as controller
from modelship.controllers.context import Context
from modelship.k8s.fake import FakeKube, FakePods

SHA = "0" * 64


def world(pod: Pod) -> Context:
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.create(model())
    kube.set_status("modelship.io/v1alpha1", "Model", NS, "m", {
        "stableRevision": "m-r1", "phase": "Serving", "trainingJobsCreated": 1,
        "history": [{"revision": "m-r1", "trainingJob": "m-1", "artifactUri": "s3://s/a/", "artifactSha256": SHA,
                     "outcome": "Promoted"}]})
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "m-r1-0", "namespace": NS, "labels": {"modelship.io/model": "m", "modelship.io/revision": "m-r1"}},
        "status": {"phase": "Running", "podIP": "10.0.0.9"}})
    kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
                 "metadata": {"name": "dm", "namespace": NS},
                 "spec": {"modelRef": {"name": "m"}, "interval": "1m", "window": {"duration": "5m", "minSamples": 100},
                          "action": {"cooldown": "1h"}}})
    answer(ctx, pod)
    writes_of(ctx)
    return ctx


def answer(ctx: Context, pod: Pod) -> None:
    assert isinstance(ctx.pods, FakePods)
    ctx.pods.texts["m-r1-0"] = generate_latest(pod.registry).decode()
    ctx.pods.bodies[("m-r1-0", "/v2/models/m/artifact")] = METADATA.model_dump_json(by_alias=True)


def evaluate(ctx: Context, at: datetime, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(controller, "datetime", type("Clock", (), {"now": staticmethod(lambda tz=None: at)}))
    controller.reconcile(ctx, fresh(ctx, "DriftMonitor", "dm"))
    return fresh(ctx, "DriftMonitor", "dm")["status"]


def test_evaluates_when_due_and_writes_nothing_between(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    assert st["state"] == "Stable" and st["samples"] == 2000
    assert st["window"]["revision"] == "m-r1" and len(st["window"]["snapshots"]) == 1
    assert [w[1] for w in writes_of(ctx)] == ["DriftMonitor/status", "Model/status", "Event"]
    evaluate(ctx, t0 + timedelta(seconds=30), monkeypatch)  # not due: no read, no write
    assert writes_of(ctx) == []


def test_the_window_survives_a_restart_and_drift_retrains_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(5000, shift=0.0)  # a long, normal past
    ctx = world(pod)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    evaluate(ctx, t0, monkeypatch)
    # The operator restarts (a new context: no memory), the inputs shift, a window later:
    restarted = Context(settings=ctx.settings, kube=ctx.kube, pods=ctx.pods)
    pod.serve(1000, shift=1.5)
    answer(restarted, pod)
    st = evaluate(restarted, t0 + timedelta(minutes=5), monkeypatch)
    # Counted from the snapshot kept in status: only the shifted window, not all 6000 rows.
    assert st["samples"] == 1000 and st["state"] == "Drift", st
    writes = writes_of(restarted)
    assert ("create", "TrainingJob", "m-2") in writes
    job = restarted.kube.get("modelship.io/v1alpha1", "TrainingJob", NS, "m-2")
    assert job is not None and job["spec"]["trigger"] == "drift"
    assert job["metadata"]["ownerReferences"][0]["name"] == "m"
    # Still drifting a minute later: cooldown, no second TrainingJob.
    pod.serve(200, shift=1.5)
    answer(restarted, pod)
    evaluate(restarted, t0 + timedelta(minutes=6), monkeypatch)
    assert not [w for w in writes_of(restarted) if w[1] == "TrainingJob"]


def test_a_missing_model_is_a_condition_and_one_event(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    ctx.kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
                     "metadata": {"name": "dm", "namespace": NS}, "spec": {"modelRef": {"name": "nope"}}})
    writes_of(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ModelNotFound" and "nope" in ready["message"]
    assert [w[1] for w in writes_of(ctx)] == ["DriftMonitor/status", "Event"]
    evaluate(ctx, t0 + timedelta(seconds=5), monkeypatch)  # evaluated again at once (never evaluated), same answer
    assert writes_of(ctx) == []
