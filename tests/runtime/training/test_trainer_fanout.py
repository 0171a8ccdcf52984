"""The fanned-out search: cells, shares, the scores in the store, and the refit.

The claim under test: ``--phase search --shares N`` run once per index, then
``--phase refit --shares N``, gives the same leaderboard (order and values),
the same best setting and the same ``model.onnx`` bytes as the single-process
trainer on the same spec and data, for grid and random search.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import cross_validate
from trainer_helpers import spec_for

from modelship.api.trainingjob import Metric
from modelship.api.trainingjob import Pipeline as PipelineSpec
from modelship_runtime.training import cells, cli, fairness, fanout, registry, scores, search
from modelship_runtime.training.pipeline import ESTIMATOR_STEP, build_pipeline

GRID = [
    {"estimator": "LogisticRegression", "params": {"C": [0.01, 0.1, 1.0]}},
    {"estimator": "RandomForest", "params": {"n_estimators": [10, 20], "max_depth": [2, 4]}},
    {"estimator": "KNeighbors", "params": {"n_neighbors": [3, 7, 11]}},
]
RANDOM = [
    {"estimator": "LogisticRegression", "distributions": {"C": {"kind": "logUniform", "low": 0.001, "high": 10}}},
    {"estimator": "DecisionTree", "distributions": {"max_depth": {"kind": "intUniform", "low": 1, "high": 8},
                                                    "min_samples_leaf": {"kind": "uniform", "low": 0.01,
                                                                         "high": 0.2}}},
]


# --- cells, shares and aggregation: pure tables --------------------------------------------

@pytest.mark.parametrize(("settings", "folds", "shares"), [(1, 2, 1), (3, 5, 2), (4, 3, 3), (2, 5, 7), (10, 5, 4)])
def test_shares_partition_the_cells_in_round_robin(settings: int, folds: int, shares: int) -> None:
    every = cells.enumerate_cells(settings, folds)
    parts = [cells.share(every, i, shares) for i in range(shares)]
    assert sorted(c for p in parts for c in p) == every  # each cell exactly once
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced to one cell
    assert parts[0][0] == cells.Cell(0, 0) and (len(parts) < 2 or not parts[1] or parts[1][0] == every[1])


def test_a_share_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="share 2 of 2"):
        cells.share(cells.enumerate_cells(2, 2), 2, 2)


R = cells.CellResult
AGGREGATE_CASES = [
    ("mean-and-std", [R(0, 0, 0.5), R(0, 1, 0.75)], [(0.625, 0.125, None)]),
    ("a-fold-missing", [R(0, 0, 0.5)], [None]),
    ("first-failure-in-fold-order", [R(0, 1, None, "B"), R(0, 0, None, "A")], [(None, None, "A")]),
    ("after-failure-takes-the-real-error", [R(0, 0, 0.9), R(0, 1, None, "boom"), R(0, 2, None, after_failure=True)],
     [(None, None, "boom")]),
    ("not-finite", [R(0, 0, float("nan")), R(0, 1, 0.5)], [(None, None, "score is not finite")]),
    ("order-of-results-does-not-matter", [R(1, 1, 0.25), R(0, 0, 1.0), R(1, 0, 0.75), R(0, 1, 1.0)],
     [(1.0, 0.0, None), (0.5, 0.25, None)]),
]


@pytest.mark.parametrize(("case", "results", "want"), AGGREGATE_CASES, ids=[c[0] for c in AGGREGATE_CASES])
def test_aggregate(case: str, results: list[cells.CellResult], want: list[Any]) -> None:
    got = cells.aggregate(len(want), 2 if case != "after-failure-takes-the-real-error" else 3, results)
    assert [None if g is None else (g.score, g.std, g.error) for g in got] == want


def test_ties_go_to_the_earlier_setting() -> None:
    trials = [search.Trial("A", {}, 0.5, 0.0), search.Trial("B", {}, 0.9, 0.0), search.Trial("C", {}, 0.9, 0.0),
              search.Trial("D", {}, None, None, "x")]
    assert search.best_index(trials) == 1
    assert search.best_index([search.Trial("A", {}, None, None, "x")]) is None


def test_deadline_stops_new_settings_but_finishes_the_current_one() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipes = [build_pipeline(PipelineSpec(), list(X.columns), [], registry.build("NaiveBayes", True, 0)[0], 0)] * 3
    folds = cells.fold_indices(X, y, True, 3, 0)
    ticks = iter(float(t) for t in range(1000))  # every reading is 1 s later
    results, skipped = cells.evaluate(cells.enumerate_cells(3, 3), pipes, X, y, folds,
                                      search.scorer(Metric.ACCURACY, [0, 1]), deadline=2.5, clock=lambda: next(ticks))
    assert [(r.setting, r.fold) for r in results] == [(0, 0), (0, 1), (0, 2)]
    assert skipped == [cells.Cell(s, f) for s in (1, 2) for f in range(3)]


# --- the cell engine scores exactly as cross_validate ----------------------------------------

@pytest.mark.parametrize(("estimator", "params", "weighted"), [
    ("LogisticRegression", {"C": 0.3}, False),
    ("RandomForest", {"n_estimators": 15, "max_depth": 4}, False),
    ("HistGradientBoosting", {"max_iter": 20}, False),
    ("MLP", {"hidden_layer_sizes": (8,), "max_iter": 100}, False),
    ("LogisticRegression", {"C": 1.0}, True),
    ("GradientBoosting", {"n_estimators": 20}, True),
])
def test_cells_score_bit_for_bit_as_cross_validate(estimator: str, params: dict[str, Any], weighted: bool) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :10]
    est, prefix = registry.build(estimator, True, 7)
    est.set_params(**{prefix + k: v for k, v in params.items()})
    pipeline = build_pipeline(PipelineSpec(), list(X.columns), [], est, 7)
    weights = None
    if weighted:
        weights = fairness.reweighing(y, pd.Series(np.where(X.iloc[:, 0] > X.iloc[:, 0].median(), "a", "b")))
    score_fn = search.scorer(Metric.ROC_AUC, [0, 1])
    cv = cells.splitter(True, 4, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP does not converge in 100 iterations: the same in both
        old = cross_validate(pipeline, X, y, cv=cv, scoring=score_fn, error_score="raise",
                             params={f"{ESTIMATOR_STEP}__sample_weight": weights} if weights is not None else None)
        results, _ = cells.evaluate(cells.enumerate_cells(1, 4), [pipeline], X, y,
                                    cells.fold_indices(X, y, True, 4, 7), score_fn, weights)
    agg = cells.aggregate(1, 4, results)[0]
    old_scores = np.asarray(old["test_score"], dtype=np.float64)
    assert agg is not None and [r.score for r in results] == old_scores.tolist()
    assert agg.score == float(old_scores.mean()) and agg.std == float(old_scores.std())


# --- the CLI per index against the single-process trainer ------------------------------------

def _cli(spec: Path, out: str, *extra: str, log: Path) -> tuple[int, dict[str, Any]]:
    code = cli.main(["--spec", str(spec), "--output", out, "--termination-log", str(log), *extra])
    return code, json.loads(log.read_text())


def _write_spec(tmp_path: Path, spec: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _fanned(tmp_path: Path, spec_path: Path, out: str, shares: int,
            scores_uri: str | None = None) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    extra = ["--scores", scores_uri] if scores_uri else []
    parts = []
    for i in reversed(range(shares)):  # any order: shares are independent
        code, summary = _cli(spec_path, out, "--phase", "search", "--shares", str(shares), "--index", str(i),
                             *extra, log=tmp_path / f"share{i}.log")
        assert code == 0, summary
        parts.append(summary)
    code, summary = _cli(spec_path, out, "--phase", "refit", "--shares", str(shares), *extra,
                         log=tmp_path / "refit.log")
    return code, summary, parts


def _same_result(single_dir: Path, fanned_dir: Path) -> None:
    one = json.loads((single_dir / "metadata.json").read_text())
    many = json.loads((fanned_dir / "metadata.json").read_text())
    assert many["leaderboard"] == one["leaderboard"]  # order, params, scores and std, to the bit
    assert (many["bestEstimator"], many["bestParams"], many["cvScore"]) == (
        one["bestEstimator"], one["bestParams"], one["cvScore"])
    assert many["specHash"] == one["specHash"] and many["metrics"] == one["metrics"]
    assert (fanned_dir / "model.onnx").read_bytes() == (single_dir / "model.onnx").read_bytes()


@pytest.mark.parametrize(("strategy", "candidates", "shares"), [
    ("grid", GRID, 2), ("grid", GRID, 3), ("grid", GRID, 40), ("random", RANDOM, 2), ("random", RANDOM, 5),
])
def test_fanned_out_search_equals_the_single_process_search(
        datasets: dict[str, Path], tmp_path: Path, strategy: str, candidates: list[dict[str, Any]],
        shares: int) -> None:
    spec = spec_for(datasets["breast_cancer"], "target", *candidates,
                    search={"strategy": strategy, "cvFolds": 3, "randomIterations": 5})
    single = _write_spec(tmp_path, spec, "single.yaml")
    code, one = _cli(single, f"file://{tmp_path / 'single'}", log=tmp_path / "single.log")
    assert code == 0, one
    fanned = _write_spec(tmp_path, {**spec, "search": {**spec["search"], "parallelism": shares}}, "fanned.yaml")
    code, many, parts = _fanned(tmp_path, fanned, f"file://{tmp_path / 'fanned'}", shares)
    assert code == 0, many
    _same_result(tmp_path / "single", tmp_path / "fanned")
    assert many["artifact"]["sha256"] == one["artifact"]["sha256"]
    total = one["search"]["cellsTotal"]
    keys = ("settings", "folds", "cellsTotal", "cellsDone", "stoppedBy")
    assert {k: many["search"][k] for k in keys} == {k: one["search"][k] for k in keys}
    assert many["search"]["shares"] == shares and one["search"]["shares"] == 1
    assert one["search"]["startedAt"] <= one["search"]["firstCellAt"] <= one["search"]["searchEndAt"]
    assert all(p["startedAt"] <= p["firstCellAt"] <= p["searchEndAt"] for p in parts)
    assert all(p["startToFirstCellSeconds"] > 0 for p in parts)  # in-process here: from pytest's start
    assert sum(p["cellsDone"] for p in parts) == total
    files = sorted(p.name for p in (tmp_path / "fanned" / "search").iterdir())
    assert files == [scores.file_name(i, shares) for i in range(shares)]


def test_shares_in_separate_processes_over_s3_give_the_same_bytes(
        datasets: dict[str, Path], tmp_path: Path, s3_server: str) -> None:
    """Each share its own process (another hash seed each), the scores in S3 (moto)."""
    import boto3

    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
           "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="t",
                 aws_secret_access_key="t").create_bucket(Bucket="fanout")
    spec = spec_for(datasets["mixed"], "label",
                    {"estimator": "HistGradientBoosting", "params": {"max_iter": [10, 20], "max_depth": [2, 3]}})
    path = _write_spec(tmp_path, spec)
    trainer = Path(sys.executable).parent / "modelship-train"

    def run(out: str, *extra: str, seed: str = "0", index: str | None = None) -> dict[str, Any]:
        done = subprocess.run([str(trainer), "--spec", str(path), "--output", out, "--termination-log",
                               str(tmp_path / "t.log"), *extra], capture_output=True, text=True, timeout=300,
                              check=False, env={**env, "PYTHONHASHSEED": seed,
                                                **({"JOB_COMPLETION_INDEX": index} if index else {})})
        assert done.returncode == 0, done.stderr[-2000:]
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary

    one = run("s3://fanout/single/")
    for i in range(2):  # the index from JOB_COMPLETION_INDEX, as in an Indexed Job's pod
        run("s3://fanout/fanned/", "--phase", "search", "--shares", "2", seed=str(i + 3), index=str(i))
    many = run("s3://fanout/fanned/", "--phase", "refit", "--shares", "2", seed="9")
    assert many["artifact"]["sha256"] == one["artifact"]["sha256"]
    assert many["leaderboard"] == one["leaderboard"] and many["bestParams"] == one["bestParams"]


# --- write-once scores, retries and failures --------------------------------------------------

def test_a_retried_share_reuses_its_scores_and_a_changed_dataset_is_refused(
        datasets: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(datasets["breast_cancer"].read_bytes())
    path = _write_spec(tmp_path, spec_for(data, "target", *GRID[:1]))
    out = f"file://{tmp_path / 'a'}"
    args = ("--phase", "search", "--shares", "2", "--index", "1")
    code, first = _cli(path, out, *args, log=tmp_path / "1.log")
    written = (tmp_path / "a" / "search" / scores.file_name(1, 2)).read_bytes()
    code2, again = _cli(path, out, *args, log=tmp_path / "2.log")
    assert code == code2 == 0 and again["cellsDone"] == first["cellsDone"]
    assert (tmp_path / "a" / "search" / scores.file_name(1, 2)).read_bytes() == written  # never rewritten
    # The data changes under the running search: share 0 would score other rows.
    frame = pd.read_csv(data)
    frame.iloc[:-5].to_csv(data, index=False)
    code, summary = _cli(path, out, "--phase", "search", "--shares", "2", "--index", "1", log=tmp_path / "3.log")
    assert code == 3 and summary["reason"] == "InvalidData"
    assert "the dataset changed during the search" in summary["message"]
    code, summary = _cli(path, out, "--phase", "search", "--shares", "2", "--index", "0", log=tmp_path / "4.log")
    assert code == 0
    code, summary = _cli(path, out, "--phase", "refit", "--shares", "2", log=tmp_path / "5.log")
    assert code == 3 and "the dataset changed during the search" in summary["message"]


def test_refit_without_every_share_is_a_store_error_naming_the_share(
        datasets: dict[str, Path], tmp_path: Path) -> None:
    path = _write_spec(tmp_path, spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"}))
    out = f"file://{tmp_path / 'a'}"
    assert _cli(path, out, "--phase", "search", "--shares", "3", "--index", "1", log=tmp_path / "s.log")[0] == 0
    code, summary = _cli(path, out, "--phase", "refit", "--shares", "3", log=tmp_path / "r.log")
    assert code == 5 and summary["reason"] == "StoreError"
    assert "missing for share(s) 0, 2 of 3" in summary["message"]
    assert not (tmp_path / "a" / "model.onnx").exists()


@pytest.mark.parametrize(("case", "change", "code", "reason"), [
    ("bad-parameter", {"candidates": [{"estimator": "LogisticRegression", "params": {"Cee": [1]}}]}, 2, "InvalidSpec"),
    ("missing-target", {"dataset": {"target": "nope"}}, 3, "InvalidData"),
])
def test_every_share_fails_at_once_on_a_bad_spec_or_bad_data(
        datasets: dict[str, Path], tmp_path: Path, case: str, change: dict[str, Any], code: int, reason: str) -> None:
    spec = spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"})
    for key, value in change.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    path = _write_spec(tmp_path, spec)
    got, summary = _cli(path, f"file://{tmp_path / 'a'}", "--phase", "search", "--shares", "2", "--index", "1",
                        log=tmp_path / "s.log")
    assert (got, summary["reason"]) == (code, reason)
    assert not (tmp_path / "a" / "search").exists()


def test_index_out_of_range_and_missing_index_are_usage_errors(datasets: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_spec(tmp_path, spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"}))
    code, summary = _cli(path, f"file://{tmp_path}", "--phase", "search", "--shares", "2", "--index", "2",
                         log=tmp_path / "s.log")
    assert code == 2 and "indexes 0 to 1" in summary["message"]
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--spec", str(path), "--phase", "search", "--shares", "2"])
    assert exc.value.code == 2


def test_time_budget_in_shares_leaves_settings_out_as_the_single_process_does(
        datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every clock reading is 10 s later: each share scores its first setting's cells, then stops."""
    ticks = iter(float(t) for t in range(0, 100000, 10))
    monkeypatch.setattr(fanout.time, "monotonic", lambda: next(ticks))
    spec = spec_for(datasets["iris"], "target", {"estimator": "KNeighbors", "params": {"n_neighbors": [1, 3, 5, 7]}},
                    search={"maxSeconds": 5, "cvFolds": 3})
    path = _write_spec(tmp_path, spec)
    code, summary, parts = _fanned(tmp_path, path, f"file://{tmp_path / 'a'}", 2)
    assert code == 0, summary
    assert summary["search"]["stoppedBy"] == "maxSeconds (5)"
    assert sum(p["cellsSkipped"] for p in parts) > 0
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    # Only settings with every fold scored are ranked.
    assert 1 <= len(meta["leaderboard"]) < 4


def test_share_summary_carries_progress_under_the_termination_limit() -> None:
    report = scores.ShareReport(index=1, shares=2, spec_hash="h", dataset_sha256="d", settings=2000, folds=5,
                                cells=[scores.ScoredCell(setting=s, fold=f, score=0.5 + s / 1e4)
                                       for s in range(2000) for f in range(5) if (s * 5 + f) % 2 == 1])
    summary = fanout.share_summary(report, "accuracy")
    assert summary["cellsDone"] == 5000 and summary["cellsTotal"] == 10000
    assert len(summary["partial"]) == fanout.PARTIAL_SETTINGS
    best = summary["partial"][0]
    assert best[0] == 1999 and best[2] in (2, 3)
    assert len(cli.fit_summary({**summary, "exitCode": 0}).encode()) < cli.TERMINATION_LIMIT
