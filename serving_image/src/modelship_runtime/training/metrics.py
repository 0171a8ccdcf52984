"""Holdout metrics, computed on what the ONNX model answers (what will serve)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from modelship.api.trainingjob import LOWER_IS_BETTER, Metric
from modelship_runtime.training.convert import Prediction


def _labels_like(y: pd.Series, labels: Any) -> np.ndarray[Any, Any]:
    return np.asarray(labels).astype(y.to_numpy().dtype)


def classification(y: pd.Series, pred: Prediction, classes: list[object]) -> dict[str, float]:
    assert pred.labels is not None and pred.probabilities is not None
    y_true = y.to_numpy()
    y_pred = _labels_like(y, pred.labels)
    proba = pred.probabilities
    binary = len(classes) == 2
    pos = classes[-1]
    avg: dict[str, Any] = {"pos_label": pos} if binary else {"average": "macro"}
    out: dict[str, Callable[[], float]] = {
        Metric.ACCURACY: lambda: skm.accuracy_score(y_true, y_pred),
        Metric.BALANCED_ACCURACY: lambda: skm.balanced_accuracy_score(y_true, y_pred),
        Metric.F1: lambda: skm.f1_score(y_true, y_pred, zero_division=0, **avg),
        Metric.F1_MACRO: lambda: skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        Metric.PRECISION: lambda: skm.precision_score(y_true, y_pred, zero_division=0, **avg),
        Metric.RECALL: lambda: skm.recall_score(y_true, y_pred, zero_division=0, **avg),
        Metric.ROC_AUC: lambda: (
            skm.roc_auc_score(y_true == pos, proba[:, 1])
            if binary
            else skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
        ),
        Metric.LOG_LOSS: lambda: skm.log_loss(y_true, proba, labels=classes),
    }
    return _evaluate(out)


def regression(y: pd.Series, pred: Prediction) -> dict[str, float]:
    assert pred.values is not None
    y_true = y.to_numpy(dtype=np.float64)
    v = pred.values
    return _evaluate(
        {
            Metric.R2: lambda: skm.r2_score(y_true, v),
            Metric.RMSE: lambda: math.sqrt(skm.mean_squared_error(y_true, v)),
            Metric.MAE: lambda: skm.mean_absolute_error(y_true, v),
        }
    )


def _evaluate(fns: dict[str, Callable[[], float]]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, fn in fns.items():
        try:
            value = float(fn())
        except ValueError:  # e.g. roc_auc when the holdout lacks a class
            continue
        if math.isfinite(value):
            values[str(name)] = value
    return values


def better(metric: str, new: float, old: float, by: float) -> bool:
    """Whether ``new`` beats ``old`` by at least ``by`` in the metric's direction."""
    if Metric(metric) in LOWER_IS_BETTER:
        return new <= old - by
    return new >= old + by
