"""The trainer end to end on scikit-learn's datasets and a mixed synthetic set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from trainer_helpers import Trainer, mixed_frame, spec_for

from modelship.api.trainingjob import TrainingJobStatus
from modelship_runtime.artifacts import store
from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.training import convert

SUMMARY_KEYS = {
    "artifact", "dataset", "task", "bestEstimator", "bestParams", "metric", "score", "metrics",
    "onnxMaxDelta", "gates", "passed", "leaderboard", "startTime", "completionTime",
    "durationSeconds", "cpuSeconds", "exitCode",
}


@pytest.mark.parametrize(
    ("name", "target", "task", "candidates", "metric", "floor"),
    [
        ("breast_cancer", "target", "binary",
         [{"estimator": "LogisticRegression", "params": {"C": [0.1, 1.0]}},
          {"estimator": "RandomForest", "params": {"n_estimators": [20], "max_depth": [4]}}],
         "roc_auc", 0.95),
        ("wine", "target", "multiclass",
         [{"estimator": "LogisticRegression"}, {"estimator": "KNeighbors", "params": {"n_neighbors": [3, 7]}}],
         "accuracy", 0.85),
        ("iris", "target", "multiclass",
         [{"estimator": "DecisionTree", "params": {"max_depth": [2, 3]}}, {"estimator": "NaiveBayes"}],
         "f1_macro", 0.85),
        ("diabetes", "target", "regression",
         [{"estimator": "Ridge", "params": {"alpha": [0.1, 1.0]}},
          {"estimator": "GradientBoosting", "params": {"n_estimators": [30], "max_depth": [2]}}],
         "r2", 0.2),
        ("mixed", "label", "binary",
         [{"estimator": "LogisticRegression"}, {"estimator": "HistGradientBoosting", "params": {"max_iter": [30]}}],
         "accuracy", 0.75),
    ],
)
def test_trains_checks_and_writes_an_artifact(
    train: Trainer, datasets: dict[str, Path], name: str, target: str, task: str,
    candidates: list[dict[str, object]], metric: str, floor: float,
) -> None:
    spec = spec_for(datasets[name], target, *candidates, metric=metric,
                    gates={"thresholds": [{"metric": metric, "min": floor}]})
    run = train(spec)
    assert run.code == 0, run.stderr
    s = run.summary
    assert set(s) >= SUMMARY_KEYS, set(s) ^ SUMMARY_KEYS
    assert s["task"] == task and s["passed"] is True and s["metric"] == metric
    assert s["score"] >= floor and s["onnxMaxDelta"] <= 1e-4
    assert s["dataset"]["rows"] == len(pd.read_csv(datasets[name]))
    assert s["artifact"]["sha256"] == store.sha256_hex((run.output / "model.onnx").read_bytes())
    assert run.termination is not None and json.loads(run.termination)["artifact"] == s["artifact"]
    assert len(run.termination.encode()) < 4096
    # The operator reads the termination message straight into the status.
    status = TrainingJobStatus.model_validate(json.loads(run.termination))
    assert status.artifact is not None and status.artifact.sha256 == s["artifact"]["sha256"]
    assert status.dataset is not None and status.best_estimator == s["bestEstimator"]
    assert status.gates[0].name == "onnxParity"

    meta = store.read_metadata(f"file://{run.output}")
    assert meta.model_sha256 == s["artifact"]["sha256"] and meta.gates_passed is True
    assert meta.best_estimator == s["bestEstimator"] and meta.leaderboard
    assert set(meta.feature_importance) == {f.name for f in meta.features}
    assert meta.versions["scikit-learn"] and meta.spec_hash and meta.dataset_sha256 == s["dataset"]["sha256"]
    assert set(meta.reference.features) == {f.name for f in meta.features}
    assert meta.reference.prediction is not None
    assert abs(sum(meta.reference.prediction.proportions) - 1) < 1e-9

    # The artifact answers by itself, as the server will use it.
    frame = pd.read_csv(datasets[name]).head(20)
    sess = ort.InferenceSession(store.read_model(f"file://{run.output}"), providers=["CPUExecutionProvider"])
    inputs = convert.feeds(frame, meta.features, meta.input_mode, meta.tensor_input)
    assert {i.name for i in sess.get_inputs()} == set(inputs)
    names = [o.name for o in meta.outputs]
    outs = dict(zip(names, sess.run(names, inputs), strict=True))
    if task == "regression":
        assert outs["value"].shape == (20, 1)
    else:
        assert outs["probabilities"].shape == (20, len(meta.classes or []))
        assert np.allclose(outs["probabilities"].sum(axis=1), 1.0)


def test_mixed_data_uses_one_input_per_column(train: Trainer, datasets: dict[str, Path]) -> None:
    run = train(spec_for(datasets["mixed_parquet"], "label", {"estimator": "LogisticRegression"},
                         dataset={"sensitiveFeature": "group", "features": ["a", "b", "color", "size"]}))
    assert run.code == 0, run.stderr
    meta = Metadata.model_validate(run.metadata())
    assert meta.input_mode == "columns" and meta.tensor_input is None
    assert {(f.name, f.type, f.dtype) for f in meta.features} == {
        ("a", "numeric", "double"), ("b", "numeric", "double"),
        ("color", "categorical", "string"), ("size", "categorical", "string"),
    }
    color = meta.reference.features["color"]
    assert color.type == "categorical" and set(color.categories) == {"red", "green", "blue"}  # type: ignore[union-attr]
    assert 0.02 < color.missing_ratio < 0.1
    assert meta.fairness is not None and "demographicParityDifference" in meta.fairness
    # An unseen category and a missing number are answered, not refused.
    sess = convert.session(store.read_model(f"file://{run.output}"))
    row = pd.DataFrame({"a": [np.nan], "b": [0.5], "color": ["purple"], "size": [""]})
    pred = convert.predict(sess, convert.feeds(row, meta.features, meta.input_mode, None), meta.outputs)
    assert pred.probabilities is not None and np.isfinite(pred.probabilities).all()


def test_same_data_and_spec_give_the_same_model_bytes(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["mixed"], "label",
                    {"estimator": "RandomForest", "params": {"n_estimators": [15], "max_depth": [3, 5]}},
                    {"estimator": "MLP", "params": {"hidden_layer_sizes": [[8]], "max_iter": [200]}})
    first, second = train(spec), train(spec)
    assert first.code == second.code == 0, first.stderr
    assert (first.output / "model.onnx").read_bytes() == (second.output / "model.onnx").read_bytes()
    assert first.summary["artifact"]["sha256"] == second.summary["artifact"]["sha256"]


def test_json_spec_and_a_whole_trainingjob_object(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"})
    assert train(spec, fmt="json").code == 0
    whole = {"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "x"}, "spec": spec}
    assert train(whole).code == 0


def test_random_search_with_distributions(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(
        datasets["breast_cancer"], "target",
        {"estimator": "LogisticRegression", "distributions": {"C": {"kind": "logUniform", "low": 0.01, "high": 10}}},
        search={"strategy": "random", "randomIterations": 4},
    )
    run = train(spec)
    assert run.code == 0, run.stderr
    assert 0.01 <= run.summary["bestParams"]["C"] <= 10
    assert len(run.metadata()["leaderboard"]) == 4


def test_pipeline_options_pca_minmax_constant_imputation(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["mixed"], "label", {"estimator": "SVM", "params": {"C": [1.0]}},
                    dataset={"features": ["a", "b", "color"]},
                    pipeline={"scaling": "minmax", "pca": {"components": 2},
                              "imputation": {"numeric": "constant", "fillValue": -1, "categorical": "constant"}})
    run = train(spec)
    assert run.code == 0, run.stderr
    assert run.summary["onnxMaxDelta"] <= 1e-4


def test_ordinal_codes_without_one_hot(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["mixed"], "label", {"estimator": "DecisionTree", "params": {"max_depth": [4]}},
                    dataset={"features": ["a", "color", "size"]}, pipeline={"oneHot": False})
    run = train(spec)
    assert run.code == 0, run.stderr
    assert run.summary["onnxMaxDelta"] <= 1e-4


def test_text_labels_and_f1_on_the_positive_class(train: Trainer, tmp_path: Path) -> None:
    frame = mixed_frame(300)
    frame["label"] = frame["label"].map({0: "no", 1: "yes"})
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    run = train(spec_for(path, "label", {"estimator": "GradientBoosting", "params": {"n_estimators": [20]}},
                         metric="f1", dataset={"features": ["a", "b", "color"]}))
    assert run.code == 0, run.stderr
    meta = run.metadata()
    assert meta["classes"] == ["no", "yes"] and meta["reference"]["prediction"]["categories"] == ["no", "yes"]
    sess = convert.session(store.read_model(f"file://{run.output}"))
    parsed = Metadata.model_validate(meta)
    pred = convert.predict(sess, convert.feeds(frame.head(5), parsed.features, parsed.input_mode, None), parsed.outputs)
    assert pred.labels is not None and set(pred.labels) <= {"no", "yes"}


def test_same_bytes_across_processes_with_different_hash_seeds(datasets: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_for(
        datasets["mixed"], "label", {"estimator": "HistGradientBoosting", "params": {"max_iter": [20]}})))
    trainer = Path(sys.executable).parent / "modelship-train"
    digests = set()
    for seed in ("1", "4"):  # skl2onnx lists opsets in another order under seed 4
        done = subprocess.run(
            [str(trainer), "--spec", str(spec), "--output", f"file://{tmp_path / seed}",
             "--termination-log", str(tmp_path / "log")],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(json.loads(done.stdout)["artifact"]["sha256"])
    assert len(digests) == 1
