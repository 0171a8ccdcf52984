"""Quality per revision: realised metrics on labelled rows, CBPE estimates on all rows.

Metric definitions are the trainer's holdout metrics (scikit-learn's, with
the positive class the last of the model's classes), so a revision's live
accuracy compares with the accuracy its TrainingJob reported. Labels arrive
as text and are matched to the model's classes by their text; a label that
is none of the classes counts as a wrong prediction. The work is on Arrow
columns and integer class codes: a million rows take seconds, not minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                           n_classes: int) -> dict[str, float]:
    """Metrics on class codes (0..n-1; -1 for a label that is no class); the positive class is the last."""
    binary = n_classes == 2
    pos = n_classes - 1
    avg: dict[str, Any] = {"pos_label": pos} if binary else {"average": "macro", "labels": list(range(n_classes))}
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


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Predictions as the text labels are compared by (an integral float as an integer)."""
    if pa.types.is_floating(column.type):
        values = column.to_numpy()
        if np.all(np.mod(values, 1) == 0):
            return pa.chunked_array([pa.array(values.astype(np.int64)).cast(pa.string())])
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return column.cast(pa.string())


def _codes(column: pa.ChunkedArray, classes: list[str]) -> np.ndarray:
    """Position of each value among ``classes``; -1 when it is none of them."""
    index = pc.index_in(column, value_set=pa.array(classes, pa.string()))
    return np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _is_regression(md: Metadata | None, rows: pa.Table) -> bool:
    if md is not None:
        return md.task == "regression"
    return layout.PREDICTION in rows.column_names and pa.types.is_floating(rows.schema.field(layout.PREDICTION).type)


def evaluate_revision(revision: str, rows: pa.Table, labelled: pa.Table, md: Metadata | None,
                      estimate: bool = True) -> RevisionResult:
    """One revision's realised metrics (``labelled``) and CBPE estimates (``rows``, all its predictions)."""
    result = RevisionResult(revision, rows.num_rows, labelled.num_rows)
    if _is_regression(md, rows):
        if labelled.num_rows:
            y_true = pc.cast(labelled.column(layout.LABEL), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            y_true = np.asarray(y_true, dtype=np.float64)
            ok = np.isfinite(y_true)
            result.unknown_labels = int((~ok).sum())
            y_pred = np.asarray(labelled.column(layout.PREDICTION).to_numpy(), dtype=np.float64)
            result.metrics = regression_metrics(y_true[ok], y_pred[ok])
        return result
    if md is not None and md.classes:
        classes = [str(c) for c in md.classes]
    else:
        seen = pc.unique(_text(rows.column(layout.PREDICTION))).to_pylist() if rows.num_rows else []
        classes = sorted(str(v) for v in seen)
    proba_cols = [layout.proba_column(c) for c in (md.classes if md is not None and md.classes else classes)]
    has_proba = bool(proba_cols) and all(c in rows.column_names for c in proba_cols)
    if labelled.num_rows and classes:
        y_true = _codes(labelled.column(layout.LABEL), classes)
        y_pred = _codes(_text(labelled.column(layout.PREDICTION)), classes)
        result.unknown_labels = int((y_true < 0).sum())
        proba = np.column_stack([labelled.column(c).to_numpy() for c in proba_cols]) if has_proba else None
        result.metrics = classification_metrics(y_true, y_pred, proba, len(classes))
    if estimate and has_proba and len(classes) == 2 and rows.num_rows:
        score = np.asarray(rows.column(proba_cols[-1]).to_numpy(), dtype=np.float64)
        positive = _codes(_text(rows.column(layout.PREDICTION)), classes) == 1
        result.estimates = cbpe.estimate(score, positive, md.calibration if md is not None else None)
        if md is None or md.calibration is None:
            result.note = "no calibration in metadata.json: estimates use the raw probabilities"
    return result


def _by_revision(table: pa.Table, revision: str) -> pa.Table:
    if not table.num_rows:
        return table
    return table.filter(pc.equal(table.column(layout.REVISION), revision))


def evaluate(predictions: pa.Table, joined: pa.Table, metadata: dict[str, Metadata | None],
             estimate: bool = True) -> list[RevisionResult]:
    """Per revision: the listed ones (``metadata``'s keys) first, in order, then any other in the log."""
    revisions = list(metadata)
    if predictions.num_rows:
        seen = pc.unique(predictions.column(layout.REVISION)).to_pylist()
        revisions += sorted({str(r) for r in seen if r is not None} - set(revisions))
    return [evaluate_revision(r, _by_revision(predictions, r), _by_revision(joined, r), metadata.get(r), estimate)
            for r in revisions]
