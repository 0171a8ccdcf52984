"""The TrainingJob plan as a story: observations in, status / children / Events out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from modelship.api.trainingjob import TrainingPhase
from modelship.logic.trainersearch import INDEX_LABEL
from modelship.plans.trainingjob import Observation, Plan, Settings, plan

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = Settings("reg/trainer:1", "s3://store")


def body(parallelism: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": "loans-1", "namespace": "ml", "uid": "u-1", "generation": 1},
        "spec": {"modelRef": {"name": "loans"}, "dataset": {"uri": "s3://d/x.csv", "target": "y"},
                 "candidates": [{"estimator": "KNeighbors", "params": {"n_neighbors": [3, 5, 7]}}],
                 "search": {"parallelism": parallelism, "cvFolds": 2}, **spec},
        "status": status or {},
    }


def world(b: dict[str, Any], p: Plan | None = None, jobs: dict[str, Any] | None = None,
          pods: dict[str, Any] | None = None, configmap: bool = True) -> Observation:
    """The observation after a plan was applied: its status written, its children there."""
    if p is not None:
        b = {**b, "status": p.status.wire()}
        jobs = {**{c["metadata"]["name"]: {**c, "status": {}} for c in p.children if c["kind"] == "Job"},
                **(jobs or {})}
    return Observation(body=b, settings=SETTINGS, now=NOW, jobs=jobs or {}, pods=pods or {}, configmap=configmap)


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objs]


def done_job(**extra: Any) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Complete", "status": "True"}], **extra}}


def pod(index: int | None, phase: str, code: int | None, message: str = "", reason: str = "") -> dict[str, Any]:
    labels = {INDEX_LABEL: str(index)} if index is not None else {}
    state = {"running": {}} if code is None else {"terminated": {"exitCode": code, "message": message,
                                                                 "finishedAt": "2026-11-23T11:59:00Z",
                                                                 "reason": reason}}
    return {"metadata": {"name": f"p{index}", "labels": labels},
            "spec": {"containers": [{"name": "trainer", "resources": {"limits": {"memory": "1Gi"}}}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "trainer", "state": state}]}}


SUMMARY = {"artifact": {"uri": "s3://store/ml/loans-1-u1/", "sha256": "ab" * 32}, "bestEstimator": "KNeighbors",
           "metric": "accuracy", "score": 0.9, "passed": True, "leaderboard": [{"estimator": "KNeighbors",
                                                                                  "params": {}, "score": 0.91}],
           "search": {"shares": 1, "cellsTotal": 6, "cellsDone": 6, "stoppedBy": None}}


def test_single_pod_run_from_creation_to_success_and_a_second_plan_wants_nothing_new() -> None:
    b = body()
    first = plan(world(b, configmap=False))
    assert names(first.children) == ["ConfigMap/loans-1-spec", "Job/loans-1"]
    assert first.to_create(world(b, configmap=False)) == first.children
    assert [e.reason for e in first.events] == ["JobCreated"]
    assert first.status.phase == TrainingPhase.PENDING
    # Applied: the same world planned again creates nothing, posts nothing, changes no status.
    again = plan(world(b, first))
    assert again.to_create(world(b, first)) == [] and again.events == [] and again.status == first.status
    done = plan(world(b, first, jobs={"loans-1": done_job()},
                      pods={"loans-1": [pod(None, "Succeeded", 0, json.dumps(SUMMARY))]}))
    assert done.status.phase == TrainingPhase.SUCCEEDED
    assert done.status.search is not None and done.status.search.progress == "6/6"
    assert [e.reason for e in done.events] == ["Succeeded"]
    # Finished: nothing observed matters any more.
    after = plan(world(b, done))
    assert after.children == [] and after.events == [] and after.status == done.status


def test_fanned_out_run_creates_the_refit_only_after_every_index_succeeded() -> None:
    b = body(parallelism=2)
    first = plan(world(b, configmap=False))
    assert names(first.children) == ["ConfigMap/loans-1-spec", "Job/loans-1-search"]
    assert "Indexed Job loans-1-search (2 pods scoring 6 cells)" in first.events[0].message
    running_pods = {"loans-1-search": [pod(0, "Running", None), pod(1, "Running", None)]}
    running = plan(world(b, first, jobs={"loans-1-search": {"status": {"active": 2}}}, pods=running_pods))
    assert running.status.phase == TrainingPhase.RUNNING and running.to_create(world(b, first)) == []
    assert running.status.search is not None and running.status.search.progress == "0/6"
    # Index 1 failed (the store hiccuped): retried alone, an Event says so.
    retried = {"loans-1-search": [pod(0, "Running", None),
                                  pod(1, "Failed", 5, json.dumps({"reason": "StoreError"}), reason="Error"),
                                  pod(1, "Running", None)]}
    r2 = plan(world(b, running, jobs={"loans-1-search": {"status": {"active": 2}}}, pods=retried))
    assert [e.reason for e in r2.events] == ["IndexFailed"] and "Index 1" in r2.events[0].message
    assert "(StoreError); retried alone" in r2.events[0].message
    summary = {"cellsDone": 3, "cellsTotal": 6, "metric": "accuracy", "partial": [[0, 0.9, 1]]}  # fold 0 or 1
    done_pods = {"loans-1-search": [pod(i, "Succeeded", 0, json.dumps(summary)) for i in (0, 1)]}
    searched = plan(world(b, r2, jobs={"loans-1-search": done_job(completedIndexes="0-1")}, pods=done_pods))
    assert names(searched.children) == ["ConfigMap/loans-1-spec", "Job/loans-1-search", "Job/loans-1"]
    refit = searched.children[-1]
    assert refit["spec"]["template"]["spec"]["containers"][0]["command"][-6:] == [
        "--phase", "refit", "--shares", "2", "--scores", "s3://store/ml/loans-1-u1/search/u-1/"]
    assert [e.reason for e in searched.events] == ["JobCreated"] and "refit Job loans-1" in searched.events[0].message
    assert searched.status.search is not None and searched.status.search.best_score == 0.9
    refit_pods = {**done_pods, "loans-1": [pod(None, "Succeeded", 0, json.dumps({**SUMMARY, "search": {
        **SUMMARY["search"], "shares": 2}}))]}
    done = plan(world(b, searched, jobs={"loans-1-search": done_job(), "loans-1": done_job()}, pods=refit_pods))
    assert done.status.phase == TrainingPhase.SUCCEEDED and done.status.artifact is not None
    assert done.status.search is not None and len(done.status.search.indexes) == 2


def test_a_search_job_gone_after_success_is_not_made_again() -> None:
    b = body(parallelism=2)
    summary = {"cellsDone": 3, "cellsTotal": 6, "partial": []}
    searched = plan(world(b, plan(world(b)), jobs={"loans-1-search": done_job(completedIndexes="0-1")},
                          pods={"loans-1-search": [pod(i, "Succeeded", 0, json.dumps(summary)) for i in (0, 1)]}))
    # The search Job's TTL removed it and the refit is not there yet (operator was down).
    obs = Observation(body={**b, "status": searched.status.wire()}, settings=SETTINGS, now=NOW, configmap=True)
    p = plan(obs)
    assert names(p.to_create(obs)) == ["Job/loans-1"]


def test_a_failed_search_ends_the_run_without_a_refit() -> None:
    b = body(parallelism=2)
    first = plan(world(b))
    failed_job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}
    bad = {"loans-1-search": [pod(0, "Failed", 3, json.dumps({"reason": "InvalidData", "message": "no column y"}))]}
    p = plan(world(b, first, jobs={"loans-1-search": failed_job}, pods=bad))
    assert p.status.phase == TrainingPhase.FAILED and p.status.reason == "InvalidData"
    assert "Job/loans-1" not in names(p.children)
    assert [e.reason for e in p.events] == ["InvalidData"] and p.events[0].warning


def test_an_invalid_spec_fails_with_a_message_and_makes_nothing() -> None:
    b = body()
    b["spec"]["search"]["parallelism"] = 0
    p = plan(world(b, configmap=False))
    assert p.children == [] and p.status.phase == TrainingPhase.FAILED and p.status.reason == "InvalidSpec"
    assert "spec.search.parallelism" in (p.status.message or "")


def stuck_pod(name: str, reason: str, message: str, index: int | None = None) -> dict[str, Any]:
    labels = {INDEX_LABEL: str(index)} if index is not None else {}
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "trainer", "state": {"waiting": {"reason": reason, "message": message}}}]}}


def test_a_pod_that_cannot_start_gets_one_warning_per_cause() -> None:
    b = body()
    first = plan(world(b))
    active = {"loans-1": {"status": {"active": 1}}}
    no_secret = {"loans-1": [stuck_pod("loans-1-a", "CreateContainerConfigError", 'secret "s3" not found')]}
    stuck = plan(world(b, first, jobs=active, pods=no_secret))
    assert stuck.status.phase == TrainingPhase.RUNNING and stuck.status.reason == "PodNotStarting"
    assert [(e.reason, e.warning) for e in stuck.events] == [("PodNotStarting", True)]
    assert stuck.events[0].message == ('Pod loans-1-a cannot start: container trainer: '
                                       'CreateContainerConfigError: secret "s3" not found')
    assert plan(world(b, stuck, jobs=active, pods=no_secret)).events == []  # the same cause: no second Event
    other = {"loans-1": [stuck_pod("loans-1-a", "CreateContainerConfigError", 'secret "tok" not found')]}
    changed = plan(world(b, stuck, jobs=active, pods=other))
    assert [e.reason for e in changed.events] == ["PodNotStarting"] and '"tok"' in changed.events[0].message
    started = plan(world(b, changed, jobs=active, pods={"loans-1": [pod(None, "Running", None)]}))
    assert started.events == [] and started.status.reason is None and started.status.message is None


def test_a_search_pod_that_cannot_start_is_named_too() -> None:
    b = body(parallelism=2)
    first = plan(world(b))
    pods = {"loans-1-search": [pod(0, "Running", None),
                               stuck_pod("loans-1-search-1", "ImagePullBackOff", "Back-off", index=1)]}
    p = plan(world(b, first, jobs={"loans-1-search": {"status": {"active": 2}}}, pods=pods))
    assert p.status.phase == TrainingPhase.RUNNING and p.status.reason == "PodNotStarting"
    complete = next(c for c in p.status.conditions if c.type == "Complete")
    assert complete.reason == "PodNotStarting" and "loans-1-search-1" in complete.message
    assert [e.reason for e in p.events] == ["PodNotStarting"]


def test_a_refused_child_fails_the_run_as_invalid_spec_once() -> None:
    from modelship.plans.trainingjob import refused

    message = "the API server refused to create Job loans-1 (422): Job \"loans-1\" is invalid: ..."
    p = refused(world(body(), configmap=True), message)
    assert p.children == [] and p.status.phase == TrainingPhase.FAILED and p.status.reason == "InvalidSpec"
    assert p.status.message == message and [(e.reason, e.warning) for e in p.events] == [("InvalidSpec", True)]
    again = plan(world(body(status=p.status.wire())))
    assert again.children == [] and again.events == [] and again.status == p.status  # finished: left alone
