"""Quality per revision: realised metrics on labelled rows, CBPE estimates on all rows.

Metric definitions are the trainer's holdout metrics (scikit-learn's, with
the positive class the last of the model's classes), so a revision's live
accuracy compares with the accuracy its TrainingJob reported. Labels arrive
as text and are matched to the model's classes by their text; a label that
is none of the classes counts as a wrong prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.groundtruth import cbpe, layout

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc")
REGRESSION = ("r2", "rmse", "mae")


@dataclass
class RevisionResult:
    revision: str
    rows: int
    labelled: int
    metrics: dict[str, float] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    unknown_labels: int = 0
    note: str = ""

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"revision": self.revision, "rows": self.rows, "labelled": self.labelled}
        if self.metrics:
            out["metrics"] = self.metrics
        if self.estimates:
            out["estimates"] = self.estimates
        if self.unknown_labels:
            out["unknownLabels"] = self.unknown_labels
        if self.note:
            out["note"] = self.note[:200]
        return out


def _safe(fn: Any) -> float | None:
    try:
        value = float(fn())
    except ValueError:  # e.g. roc_auc with one class among the labels
        return None
    return value if math.isfinite(value) else None


def _classes(md: Metadata | None, rows: pd.DataFrame) -> list[str]:
    if md is not None and md.classes:
        return [str(c) for c in md.classes]
    return sorted({str(v) for v in rows[layout.PREDICTION].tolist()})


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                           classes: list[str]) -> dict[str, float]:
    binary = len(classes) == 2
    pos = classes[-1] if classes else "1"
    avg: dict[str, Any] = {"pos_label": pos} if binary else {"average": "macro"}
    fns: dict[str, Any] = {
        "accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y_true, y_pred),
        "f1": lambda: skm.f1_score(y_true, y_pred, zero_division=0, **avg),
        "precision": lambda: skm.precision_score(y_true, y_pred, zero_division=0, **avg),
        "recall": lambda: skm.recall_score(y_true, y_pred, zero_division=0, **avg),
    }
    if proba is not None and binary:
        fns["roc_auc"] = lambda: skm.roc_auc_score(y_true == pos, proba[:, -1])
    out = {}
    with np.errstate(all="ignore"):
        for name, fn in fns.items():
            value = _safe(fn)
            if value is not None:
                out[name] = round(value, 6)
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    fns = {"r2": lambda: skm.r2_score(y_true, y_pred),
           "rmse": lambda: math.sqrt(skm.mean_squared_error(y_true, y_pred)),
           "mae": lambda: skm.mean_absolute_error(y_true, y_pred)}
    out = {}
    for name, fn in fns.items():
        value = _safe(fn) if len(y_true) > 1 else None
        if value is not None:
            out[name] = round(value, 6)
    return out


def evaluate_revision(revision: str, rows: pd.DataFrame, labelled: pd.DataFrame, md: Metadata | None,
                      estimate: bool = True) -> RevisionResult:
    """One revision's realised metrics (``labelled``) and CBPE estimates (``rows``, all its predictions)."""
    result = RevisionResult(revision, len(rows), len(labelled))
    task = md.task if md is not None else None
    if task == "regression" or (task is None and layout.PREDICTION in rows
                                and pd.api.types.is_float_dtype(rows[layout.PREDICTION])):
        if len(labelled):
            y_true = pd.to_numeric(labelled[layout.LABEL], errors="coerce").to_numpy(dtype=np.float64)
            ok = np.isfinite(y_true)
            result.unknown_labels = int((~ok).sum())
            result.metrics = regression_metrics(y_true[ok], labelled[layout.PREDICTION].to_numpy(np.float64)[ok])
        return result
    classes = _classes(md, rows)
    proba_cols = [layout.proba_column(c) for c in (md.classes if md is not None and md.classes else classes)]
    has_proba = all(c in rows.columns for c in proba_cols) and bool(proba_cols)
    if len(labelled):
        y_true = labelled[layout.LABEL].astype(str).to_numpy()
        y_pred = labelled[layout.PREDICTION].map(_text).to_numpy()
        result.unknown_labels = int((~np.isin(y_true, classes)).sum())
        proba = labelled[proba_cols].to_numpy(np.float64) if has_proba else None
        result.metrics = classification_metrics(y_true, y_pred, proba, classes)
    if estimate and has_proba and len(classes) == 2 and len(rows):
        score = rows[proba_cols[-1]].to_numpy(np.float64)
        positive = rows[layout.PREDICTION].map(_text).to_numpy() == classes[-1]
        result.estimates = cbpe.estimate(score, positive, md.calibration if md is not None else None)
        if md is None or md.calibration is None:
            result.note = "no calibration in metadata.json: estimates use the raw probabilities"
    return result


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def evaluate(predictions: pd.DataFrame, joined: pd.DataFrame, metadata: dict[str, Metadata | None],
             estimate: bool = True) -> list[RevisionResult]:
    """Per revision: the listed ones (``metadata``'s keys) first, in order, then any other in the log."""
    revisions = list(metadata)
    if len(predictions):
        revisions += sorted(set(predictions[layout.REVISION].unique()) - set(revisions))
    out = []
    by_rev = dict(tuple(predictions.groupby(layout.REVISION, sort=False))) if len(predictions) else {}
    joined_by_rev = dict(tuple(joined.groupby(layout.REVISION, sort=False))) if len(joined) else {}
    empty = predictions.iloc[0:0]
    for revision in revisions:
        out.append(evaluate_revision(revision, by_rev.get(revision, empty), joined_by_rev.get(revision, empty),
                                     metadata.get(revision), estimate))
    return out
