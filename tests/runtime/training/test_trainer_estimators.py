"""Every allow-listed estimator converts to ONNX and matches scikit-learn."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from trainer_helpers import mixed_frame

from modelship.api.trainingjob import Estimator
from modelship.api.trainingjob import Pipeline as PipelineSpec
from modelship_runtime.training import convert, registry
from modelship_runtime.training.pipeline import build_pipeline

MAX_DELTA = 1e-4
# Small models keep the matrix fast; the defaults are exercised end to end.
SMALL: dict[str, dict[str, Any]] = {
    "RandomForest": {"n_estimators": 10},
    "ExtraTrees": {"n_estimators": 10},
    "GradientBoosting": {"n_estimators": 20},
    "HistGradientBoosting": {"max_iter": 20},
    "MLP": {"hidden_layer_sizes": (16,), "max_iter": 300},
}


def _data(kind: str) -> tuple[pd.DataFrame, pd.Series, list[str], list[str]]:
    if kind == "iris":
        X, y = load_iris(return_X_y=True, as_frame=True)
        return X, y, list(X.columns), []
    if kind == "diabetes":
        X, y = load_diabetes(return_X_y=True, as_frame=True)
        return X, y, list(X.columns), []
    frame = mixed_frame(300)
    X = frame[["a", "b", "color", "size"]].copy()
    for c in ("color", "size"):
        X[c] = X[c].where(X[c].notna(), "").astype(object)
    return X, frame["label"], ["a", "b"], ["color", "size"]


CASES = [
    (e.value, kind)
    for e in Estimator
    for kind in ("iris", "mixed", "diabetes")
    if (registry.REGISTRY[e].regressor if kind == "diabetes" else registry.REGISTRY[e].classifier) is not None
]


@pytest.mark.parametrize(("estimator", "kind"), CASES)
def test_estimator_converts_with_parity(estimator: str, kind: str) -> None:
    classification = kind != "diabetes"
    X, y, numeric, categorical = _data(kind)
    est, prefix = registry.build(estimator, classification, seed=0)
    est.set_params(**{prefix + k: v for k, v in SMALL.get(estimator, {}).items()})
    float32 = registry.lookup(estimator).onnx_float32(classification)
    pipeline = build_pipeline(PipelineSpec(), numeric, categorical, est, seed=0, float32=float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny budgets
        pipeline.fit(X, y)
    converted = convert.to_onnx(pipeline, numeric, categorical, classification)
    sess = convert.session(converted.bytes())
    tensor_input = convert.TENSOR_INPUT if not categorical else None
    pred = convert.predict(sess, convert.feeds(X, converted.features, converted.input_mode, tensor_input), converted.outputs)
    parity = convert.parity(pipeline, X, pred, classification)
    assert parity.max_delta <= MAX_DELTA
    assert parity.mismatches == 0
    if classification:
        assert pred.probabilities is not None and pred.probabilities.dtype == np.float64
    else:
        assert pred.values is not None and pred.values.dtype == np.float64


def test_unknown_and_task_mismatched_names_are_refused() -> None:
    with pytest.raises(KeyError, match="allowed: LogisticRegression"):
        registry.build("sklearn.svm.SVC", True, 0)
    with pytest.raises(KeyError, match="cannot do regression"):
        registry.build("LogisticRegression", False, 0)
    with pytest.raises(KeyError, match="cannot do classification"):
        registry.build("Lasso", True, 0)
