"""A fanned-out search as the operator sees it: tables of Indexed Job + pod observations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelship.api.trainingjob import (
    IndexPhase,
    SearchProgress,
    TrainingJobSpec,
    TrainingJobStatus,
    TrainingPhase,
)
from modelship.logic import trainersearch as ts
from modelship.logic.trainingjob import compute_fanout_status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SPEC = TrainingJobSpec.model_validate({
    "modelRef": {"name": "loans"},
    "dataset": {"uri": "s3://d/x.csv", "target": "y"},
    "candidates": [{"estimator": "LogisticRegression", "params": {"C": [0.1, 1, 10]}},
                   {"estimator": "KNeighbors", "params": {"n_neighbors": [3, 5], "weights": ["uniform", "distance"]}}],
    "search": {"parallelism": 3, "cvFolds": 2},
})
NAMES = ("loans-1-search", "loans-1")


def share_summary(index: int, partial: list[list[Any]], done: int = 4, **extra: Any) -> str:
    return json.dumps({"phase": "search", "index": index, "shares": 3, "cellsTotal": 14, "cellsDone": done,
                       "cellsSkipped": 0, "metric": "accuracy", "partial": partial, "exitCode": 0, **extra})


def pod(index: int, phase: str, code: int | None = None, message: str = "", reason: str = "",
        finished: str = "2026-11-23T11:59:00Z", disrupted: bool = False, name: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if code is None else {
        "terminated": {"exitCode": code, "message": message, "finishedAt": finished, "reason": reason}}
    conditions = [{"type": "DisruptionTarget", "status": "True"}] if disrupted else []
    return {"metadata": {"name": name or f"loans-1-search-{index}-x", "labels": {ts.INDEX_LABEL: str(index)}},
            "spec": {"containers": [{"name": "trainer", "resources": {"limits": {"memory": "256Mi"}}}]},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "trainer", "state": state}]}}


def job(active: int = 0, completed: str = "", failed: str = "", cond: str | None = None,
        reason: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-11-23T11:50:00Z", "active": active,
                              "completedIndexes": completed, "failedIndexes": failed}
    if cond:
        status["conditions"] = [{"type": cond, "status": "True", "reason": reason, "message": f"job {reason}",
                                 "lastTransitionTime": "2026-11-23T11:59:30Z"}]
    return {"metadata": {"name": "loans-1-search"}, "status": status}


@pytest.mark.parametrize(("text", "want"), [
    ("", set()), (None, set()), ("0", {0}), ("1,3-5", {1, 3, 4, 5}), ("0-2,junk,7", {0, 1, 2, 7}), ("5-3", set()),
])
def test_parse_indexes(text: str | None, want: set[int]) -> None:
    assert ts.parse_indexes(text) == want


@pytest.mark.parametrize(("spec_change", "want"), [
    ({}, (3 + 4) * 2),
    ({"search": {"parallelism": 3, "cvFolds": 2, "maxFits": 5}}, 5 * 2),
    ({"search": {"parallelism": 3, "cvFolds": 2, "strategy": "random"}}, None),
])
def test_planned_cells_of_a_grid(spec_change: dict[str, Any], want: int | None) -> None:
    assert ts.planned_cells(SPEC.model_copy(update={
        k: type(getattr(SPEC, k)).model_validate(v) for k, v in spec_change.items()})) == want


BEST_CASES = [
    ("no-reports", [], None),
    ("a-setting-needs-every-fold", [{"partial": [[0, 0.9, 1]]}], None),
    ("folds-from-two-shares-add-up", [{"partial": [[0, 0.9, 1], [1, 0.7, 1]]}, {"partial": [[0, 0.8, 1]]}], 0.85),
    ("whole-settings-in-one-share", [{"partial": [[4, 1.6, 2], [5, 1.9, 2]]}], 0.95),
    ("junk-is-ignored", [{"partial": [["x"], [2, "y", 1], [3, 1.0, 2]]}], 0.5),
]


@pytest.mark.parametrize(("case", "summaries", "want"), BEST_CASES, ids=[c[0] for c in BEST_CASES])
def test_best_so_far(case: str, summaries: list[dict[str, Any]], want: float | None) -> None:
    got = ts.best_so_far(summaries, folds=2)
    assert got == pytest.approx(want) if want is not None else got is None


def test_index_outcomes_from_pods_and_the_jobs_indexes() -> None:
    pods = [
        pod(0, "Succeeded", 0, share_summary(0, [[0, 1.8, 2]], done=5)),
        pod(1, "Failed", 5, json.dumps({"reason": "StoreError"}), "Error", finished="2026-11-23T11:58:00Z",
            name="a"),  # a transient store error: retried alone, counted
        pod(1, "Failed", 143, "", "Error", name="b"),  # deleted while running (SIGTERM): replaced, not counted
        pod(1, "Running"),
        pod(2, "Failed", 1, json.dumps({"reason": "StoreError", "message": "s3 down"}), "Error", disrupted=True),
    ]
    indexes, summaries = ts.index_outcomes(3, job(active=2, completed="0"), pods)
    assert [(i.phase, i.failures, i.reason, i.cells) for i in indexes] == [
        (IndexPhase.SUCCEEDED, 0, None, 5),
        (IndexPhase.RUNNING, 1, "Terminated", None),  # the last attempt's reason
        (IndexPhase.PENDING, 0, "Disrupted", None),  # a disruption is not the trainer's failure
    ]
    assert list(summaries) == [0]


def test_progress_counts_cells_and_never_goes_backwards() -> None:
    pods = [pod(0, "Succeeded", 0, share_summary(0, [[0, 1.8, 2], [1, 1.0, 1]], done=5)),
            pod(1, "Succeeded", 0, share_summary(1, [[1, 0.5, 1], [2, 1.9, 2]], done=5)),
            pod(2, "Running")]
    first = ts.progress(SPEC, "loans-1-search", job(active=1, completed="0,1"), pods, None, None)
    assert (first.cells_done, first.cells_total, first.progress) == (10, 14, "10/14")
    assert first.best_score == 0.95 and first.parallelism == 3
    # The succeeded pods are gone (e.g. deleted): what was recorded stays.
    later = ts.progress(SPEC, "loans-1-search", job(active=1, completed="0,1"), [pod(2, "Running")], first, None)
    assert (later.cells_done, later.best_score, later.progress) == (10, 0.95, "10/14")
    assert [i.phase for i in later.indexes] == [IndexPhase.SUCCEEDED, IndexPhase.SUCCEEDED, IndexPhase.RUNNING]


def test_best_so_far_is_shown_in_metric_units_for_lower_is_better() -> None:
    summary = json.dumps({"cellsDone": 2, "cellsTotal": 14, "metric": "rmse", "partial": [[0, -6.0, 2]]})
    got = ts.progress(SPEC, "s", job(active=2), [pod(0, "Succeeded", 0, summary)], None, None)
    assert got.best_score == 3.0
    worse = json.dumps({"cellsDone": 2, "cellsTotal": 14, "metric": "rmse", "partial": [[1, -8.0, 2]]})
    again = ts.progress(SPEC, "s", job(active=2), [pod(1, "Succeeded", 0, worse)], got, None)
    assert again.best_score == 3.0  # 4.0 rmse is worse than the 3.0 already seen


FAILURE_CASES = [
    ("running", job(active=3), [pod(0, "Running")], None),
    ("bad-data-fails-the-job", job(cond="Failed", reason="PodFailurePolicy", failed="1"),
     [pod(0, "Failed", 3, json.dumps({"reason": "InvalidData", "message": "column y is missing"})),
      pod(1, "Running")], ("InvalidData", "Search index 0 failed: column y is missing")),
    ("oom", job(cond="Failed", reason="PodFailurePolicy"), [pod(2, "Failed", 137, "", "OOMKilled")],
     ("OOMKilled", "")),
    ("index-out-of-retries", job(cond="Failed", reason="FailedIndexes", failed="2"),
     [pod(2, "Failed", 5, json.dumps({"reason": "StoreError", "message": "s3 down"}), finished="a"),
      pod(2, "Failed", 5, json.dumps({"reason": "StoreError", "message": "s3 still down"}), finished="b")],
     ("StoreError", "Search index 2 failed: s3 still down")),
    ("deadline", job(cond="Failed", reason="DeadlineExceeded"), [],
     ("DeadlineExceeded", "raise search.maxSeconds")),
]


@pytest.mark.parametrize(("case", "j", "pods", "want"), FAILURE_CASES, ids=[c[0] for c in FAILURE_CASES])
def test_search_failure(case: str, j: dict[str, Any], pods: list[dict[str, Any]],
                        want: tuple[str, str] | None) -> None:
    got = ts.search_failure(j, pods, "loans-1-search")
    if want is None:
        assert got is None
        return
    assert got is not None and got[0] == want[0] and want[1] in got[1]


REFIT_SUMMARY = {
    "artifact": {"uri": "s3://b/a/", "sha256": "ab" * 32}, "dataset": {"uri": "s3://d/x.csv", "sha256": "cd" * 32,
                                                                       "rows": 100},
    "task": "binary", "bestEstimator": "KNeighbors", "metric": "accuracy", "score": 0.9, "metrics": {"accuracy": 0.9},
    "leaderboard": [{"estimator": "KNeighbors", "params": {"n_neighbors": 5}, "score": 0.95}], "passed": True,
    "startTime": "2026-11-23T11:50:00Z", "search": {"shares": 3, "cellsTotal": 14, "cellsDone": 14,
                                                     "stoppedBy": None},
    "exitCode": 0,
}
DONE_PODS = [pod(i, "Succeeded", 0, share_summary(i, [[i, 1.9 - i / 10, 2]], done=[5, 5, 4][i])) for i in range(3)]
PHASE_CASES = [
    ("nothing-yet", None, [], None, [], TrainingPhase.PENDING, None),
    ("searching", job(active=3), [pod(0, "Running")], None, [], TrainingPhase.RUNNING, "Searching"),
    ("search-done-refit-next", job(cond="Complete", completed="0-2"), DONE_PODS, None, [],
     TrainingPhase.RUNNING, "Refitting"),
    ("refit-pending", job(cond="Complete", completed="0-2"), DONE_PODS, {"status": {}}, [],
     TrainingPhase.RUNNING, "Refitting"),
    ("refit-done", job(cond="Complete", completed="0-2"), DONE_PODS,
     {"status": {"conditions": [{"type": "Complete", "status": "True"}]}},
     [pod(0, "Succeeded", 0, json.dumps(REFIT_SUMMARY))], TrainingPhase.SUCCEEDED, "Succeeded"),
    ("search-failed", job(cond="Failed", reason="PodFailurePolicy"),
     [pod(1, "Failed", 2, json.dumps({"reason": "InvalidSpec", "message": "bad C"}))], None, [],
     TrainingPhase.FAILED, "InvalidSpec"),
    ("search-oom", job(active=2), [pod(1, "Failed", 137, "", "OOMKilled")], None, [], TrainingPhase.FAILED,
     "OOMKilled"),
]


@pytest.mark.parametrize(("case", "sj", "spods", "rj", "rpods", "phase", "reason"), PHASE_CASES,
                         ids=[c[0] for c in PHASE_CASES])
def test_fanout_status_phases(case: str, sj: Any, spods: Any, rj: Any, rpods: Any, phase: TrainingPhase,
                              reason: str | None) -> None:
    st = compute_fanout_status(TrainingJobStatus(), 1, SPEC, NAMES, sj, spods, rj, rpods, NOW, model="loans")
    assert st.phase == phase
    complete = next(c for c in st.conditions if c.type == "Complete")
    if phase == TrainingPhase.FAILED:
        assert st.reason == reason and st.message
    elif reason is not None:
        assert complete.reason == reason
    assert st.search is not None and st.search.parallelism == 3


def test_fanout_success_keeps_the_indexes_and_takes_the_refits_totals() -> None:
    sj = job(cond="Complete", completed="0-2")
    rj = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    running = compute_fanout_status(TrainingJobStatus(), 1, SPEC, NAMES, sj, DONE_PODS, None, [], NOW)
    assert running.search is not None and running.search.progress == "14/14" and running.start_time
    done = compute_fanout_status(running, 1, SPEC, NAMES, sj, DONE_PODS, rj,
                                 [pod(0, "Succeeded", 0, json.dumps(REFIT_SUMMARY))], NOW + timedelta(seconds=5))
    assert done.phase == TrainingPhase.SUCCEEDED and done.artifact is not None
    assert done.search == SearchProgress(parallelism=3, job_name="loans-1-search", cells_done=14, cells_total=14,
                                         progress="14/14", best_score=0.95, indexes=running.search.indexes)
    assert [i.phase for i in done.search.indexes] == [IndexPhase.SUCCEEDED] * 3
    assert done.job_name == "loans-1" and done.start_time == "2026-11-23T11:50:00Z"


def test_fanout_oom_names_the_models_memory_limit() -> None:
    st = compute_fanout_status(TrainingJobStatus(), 1, SPEC, NAMES, job(active=2),
                               [pod(1, "Failed", 137, "", "OOMKilled")], None, [], NOW, model="loans")
    assert st.reason == "OOMKilled"
    assert "spec.training.resources.limits.memory of Model loans" in (st.message or "")
    assert "256Mi" in (st.message or "")
    by_hand = compute_fanout_status(TrainingJobStatus(), 1, SPEC, NAMES, job(active=2),
                                    [pod(1, "Failed", 137, "", "OOMKilled")], None, [], NOW)
    assert "spec.resources.limits.memory of TrainingJob loans-1," in (by_hand.message or "")


def test_recomputing_a_steady_search_changes_nothing() -> None:
    pods = [pod(0, "Running"), pod(1, "Running"), pod(2, "Running")]
    first = compute_fanout_status(TrainingJobStatus(), 1, SPEC, NAMES, job(active=3), pods, None, [], NOW)
    again = compute_fanout_status(first, 1, SPEC, NAMES, job(active=3), pods, None, [], NOW + timedelta(minutes=1))
    assert again == first
