"""TrainingJob status from the batch Job and its pods: a table of observations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelship.api.trainingjob import TrainingJobStatus, TrainingPhase
from modelship.logic.trainersearch import Termination
from modelship.logic.trainingjob import compute_status, last_termination, parse_summary

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUMMARY = {
    "artifact": {"uri": "s3://b/a/", "sha256": "ab" * 32},
    "dataset": {"uri": "s3://b/d.csv", "sha256": "cd" * 32, "rows": 1000},
    "task": "binary", "bestEstimator": "RandomForest", "metric": "roc_auc", "score": 0.93,
    "metrics": {"roc_auc": 0.93, "accuracy": 0.88}, "onnxMaxDelta": 1e-7,
    "gates": [{"name": "onnxParity", "passed": True, "message": "1e-07 <= 0.0001"}],
    "leaderboard": [{"estimator": "RandomForest", "params": {"max_depth": 6}, "score": 0.92}],
    "passed": True, "startTime": "2026-11-23T11:58:00Z", "completionTime": "2026-11-23T11:59:00Z",
    "durationSeconds": 60.0, "cpuSeconds": 55.5, "exitCode": 0,
}


def job(active: int = 0, cond: str | None = None, reason: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-11-23T11:58:00Z"}
    if active:
        status["active"] = active
    if cond:
        status["conditions"] = [{"type": cond, "status": "True", "reason": reason, "message": f"job {reason}",
                                 "lastTransitionTime": "2026-11-23T11:59:30Z"}]
    return {"metadata": {"name": "m-1"}, "status": status}


def pod(code: int | None, message: str = "", finished: str = "2026-11-23T11:59:00Z", reason: str = "",
        memory: str | None = "512Mi", last: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if code is None else {
        "terminated": {"exitCode": code, "message": message, "finishedAt": finished, "reason": reason}}
    status: dict[str, Any] = {"name": "trainer", "state": state}
    if last:  # the kubelet restarted nothing (restartPolicy Never), but lastState is read too
        status = {"name": "trainer", "state": {"running": {}}, "lastState": state}
    limits = {"limits": {"memory": memory}} if memory else {}
    return {"metadata": {"name": "m-1-abcde"},
            "spec": {"containers": [{"name": "trainer", "resources": limits}]},
            "status": {"containerStatuses": [status]}}


CASES = [
    ("no-job-yet", None, [], TrainingPhase.PENDING, None),
    ("job-pending", job(), [], TrainingPhase.PENDING, None),
    ("running", job(active=1), [pod(None)], TrainingPhase.RUNNING, None),
    ("retrying-after-a-failed-pod", job(active=1), [pod(1, "{}")], TrainingPhase.RUNNING, None),
    ("succeeded", job(cond="Complete"), [pod(0, json.dumps(SUMMARY))], TrainingPhase.SUCCEEDED, None),
    ("gate-failed", job(cond="Failed", reason="BackoffLimitExceeded"),
     [pod(4, json.dumps({**SUMMARY, "passed": False, "reason": "GateFailed",
                         "message": "threshold:roc_auc: 0.61 < 0.75"}))], TrainingPhase.FAILED, "GateFailed"),
    ("bad-data-no-summary", job(cond="Failed", reason="BackoffLimitExceeded"), [pod(3, "")],
     TrainingPhase.FAILED, "InvalidData"),
    ("deadline", job(cond="Failed", reason="DeadlineExceeded"), [], TrainingPhase.FAILED, "DeadlineExceeded"),
    ("complete-but-pod-gone", job(cond="Complete"), [], TrainingPhase.FAILED, "SummaryLost"),
    ("oom-killed", job(cond="Failed", reason="PodFailurePolicy"), [pod(137, "", reason="OOMKilled")],
     TrainingPhase.FAILED, "OOMKilled"),
    ("oom-seen-before-the-job-fails", job(active=1), [pod(137, "", reason="OOMKilled")],
     TrainingPhase.FAILED, "OOMKilled"),
    ("oom-in-last-state", job(active=1), [pod(137, "", reason="OOMKilled", last=True)],
     TrainingPhase.FAILED, "OOMKilled"),
    ("sigkill-without-oom-is-not-oom", job(cond="Failed", reason="PodFailurePolicy"), [pod(137, "", reason="Error")],
     TrainingPhase.FAILED, "Killed"),
]


@pytest.mark.parametrize(("case", "j", "pods", "phase", "reason"), CASES, ids=[c[0] for c in CASES])
def test_phase_and_reason(case: str, j: Any, pods: Any, phase: TrainingPhase, reason: str | None) -> None:
    status = compute_status(TrainingJobStatus(), 1, "m-1", j, pods, NOW)
    assert status.phase == phase
    assert status.reason == reason
    assert status.job_name == "m-1" and status.observed_generation == 1
    types = {c.type: c.status for c in status.conditions}
    assert types["Complete"] == ("True" if phase == TrainingPhase.SUCCEEDED else "False")
    if phase == TrainingPhase.FAILED:
        assert types["Failed"] == "True" and status.message


def test_success_copies_the_summary() -> None:
    status = compute_status(TrainingJobStatus(), 2, "m-1", job(cond="Complete"), [pod(0, json.dumps(SUMMARY))], NOW)
    assert status.artifact is not None and status.artifact.sha256 == "ab" * 32
    assert status.dataset is not None and status.dataset.rows == 1000
    assert status.metrics["roc_auc"] == 0.93 and status.score == 0.93
    assert status.best_estimator == "RandomForest" and status.cpu_seconds == 55.5
    assert status.leaderboard[0].params == {"max_depth": 6}
    assert status.gates[0].passed
    wire = status.wire()
    assert wire["artifact"]["uri"] == "s3://b/a/" and wire["conditions"][0]["type"] == "Complete"


def test_gate_failure_message_is_the_trainers() -> None:
    summary = {**SUMMARY, "passed": False, "reason": "GateFailed", "message": "threshold:roc_auc: 0.61 < 0.75"}
    status = compute_status(TrainingJobStatus(), 1, "m-1", job(cond="Failed"), [pod(4, json.dumps(summary))], NOW)
    assert status.message == "threshold:roc_auc: 0.61 < 0.75"
    assert status.artifact is not None  # written, but refused by its gates


def test_failure_without_summary_points_at_the_logs() -> None:
    status = compute_status(TrainingJobStatus(), 1, "m-1", job(cond="Failed"), [pod(3, "")], NOW)
    assert "kubectl logs job/m-1" in (status.message or "")


def test_finished_status_is_final_and_recomputing_changes_nothing() -> None:
    first = compute_status(TrainingJobStatus(), 1, "m-1", job(cond="Complete"), [pod(0, json.dumps(SUMMARY))], NOW)
    again = compute_status(first, 1, "m-1", None, [], NOW + timedelta(hours=2))
    assert again == first


def test_transition_time_moves_only_on_a_flip() -> None:
    running = compute_status(TrainingJobStatus(), 1, "m-1", job(active=1), [pod(None)], NOW)
    later = compute_status(running, 1, "m-1", job(active=1), [pod(None)], NOW + timedelta(minutes=5))
    assert later == running


def test_latest_termination_wins_and_bad_messages_are_ignored() -> None:
    pods = [pod(1, "x", "2026-11-23T11:00:00Z"), pod(0, json.dumps(SUMMARY), "2026-11-23T11:30:00Z")]
    assert last_termination(pods) == Termination(0, json.dumps(SUMMARY), "2026-11-23T11:30:00Z")
    assert parse_summary("not json") == {} and parse_summary("") == {} and parse_summary("[1]") == {}


OOM_CASES = [
    ("model-template", "loans", "512Mi", "spec.training.resources.limits.memory of Model loans", "limit of 512Mi"),
    ("hand-made-job", None, "300Mi", "spec.resources.limits.memory of TrainingJob m-1", "limit of 300Mi"),
    ("no-limit", None, None, "spec.resources.limits.memory of TrainingJob m-1", "no limit set"),
]


@pytest.mark.parametrize(("case", "model", "memory", "where", "limit"), OOM_CASES, ids=[c[0] for c in OOM_CASES])
def test_oom_message_names_the_limit_to_raise(case: str, model: str | None, memory: str | None, where: str,
                                              limit: str) -> None:
    status = compute_status(TrainingJobStatus(), 1, "m-1", job(cond="Failed", reason="PodFailurePolicy"),
                            [pod(137, reason="OOMKilled", memory=memory)], NOW, model=model)
    assert status.reason == "OOMKilled" and status.phase == TrainingPhase.FAILED
    assert where in (status.message or "") and limit in (status.message or "")
    assert "not retried" in (status.message or "")
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.reason == "OOMKilled" and failed.message == status.message


def waiting(reason: str, message: str = "", name: str = "m-1-abcde") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "trainer", "state": {"waiting": {"reason": reason, "message": message}}}]}}


NO_SECRET = 'secret "modelship-s3" not found'
STUCK_CASES = [
    ("missing-secret", [waiting("CreateContainerConfigError", NO_SECRET)], "PodNotStarting",
     f"Pod m-1-abcde cannot start: container trainer: CreateContainerConfigError: {NO_SECRET}"),
    ("bad-image", [waiting("InvalidImageName", 'couldn\'t parse image name "A:B:C"')], "PodNotStarting",
     'Pod m-1-abcde cannot start: container trainer: InvalidImageName: couldn\'t parse image name "A:B:C"'),
    ("pull-backoff", [waiting("ImagePullBackOff", 'Back-off pulling image "reg/nope:1"')], "PodNotStarting",
     'Pod m-1-abcde cannot start: container trainer: ImagePullBackOff: Back-off pulling image "reg/nope:1"'),
    ("after-a-failed-pod", [pod(1, "{}"), waiting("ErrImagePull", "denied", name="m-1-fghij")], "PodNotStarting",
     "Pod m-1-fghij cannot start: container trainer: ErrImagePull: denied"),
    ("no-node-fits", [{"metadata": {"name": "m-1-abcde"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}], "PodNotStarting",
     "Pod m-1-abcde cannot start: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."),
    ("creating", [waiting("ContainerCreating")], "JobRunning", "Job m-1 is running"),
    ("started", [pod(None)], "JobRunning", "Job m-1 is running"),
]


@pytest.mark.parametrize(("case", "pods", "reason", "message"), STUCK_CASES, ids=[c[0] for c in STUCK_CASES])
def test_a_pod_that_cannot_start_is_named_while_the_run_stays_running(case: str, pods: Any, reason: str,
                                                                       message: str) -> None:
    status = compute_status(TrainingJobStatus(), 1, "m-1", job(active=1), pods, NOW)
    assert status.phase == TrainingPhase.RUNNING  # the kubelet retries: a Secret made later lets it start
    complete = next(c for c in status.conditions if c.type == "Complete")
    assert (complete.status, complete.reason, complete.message) == ("False", reason, message)
    stuck = reason == "PodNotStarting"
    assert (status.reason, status.message) == ((reason, message) if stuck else (None, None))


def test_a_pod_that_starts_later_clears_the_reason_and_a_retried_pull_changes_nothing() -> None:
    pulling = compute_status(TrainingJobStatus(), 1, "m-1", job(active=1), [waiting("ErrImagePull", "denied")], NOW)
    assert pulling.reason == "PodNotStarting"
    backoff = compute_status(pulling, 1, "m-1", job(active=1), [waiting("ImagePullBackOff", "Back-off")],
                             NOW + timedelta(seconds=10))
    assert backoff == pulling  # no status patch, no second Event for the kubelet's retry
    started = compute_status(backoff, 1, "m-1", job(active=1), [pod(None)], NOW + timedelta(minutes=2))
    assert (started.phase, started.reason, started.message) == (TrainingPhase.RUNNING, None, None)
    complete = next(c for c in started.conditions if c.type == "Complete")
    assert (complete.reason, complete.message) == ("JobRunning", "Job m-1 is running")
