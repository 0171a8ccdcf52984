"""The drift reference stored in metadata.json: what serving counts live traffic against.

Numeric features: inner edges at the training deciles, deduplicated, with the
outer bins open-ended (the convention in ``artifacts.metadata``). Categorical
features: the most frequent values, the rest in ``__other__``. The
prediction: class frequencies, or deciles of the predicted value.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from modelship_runtime.artifacts.metadata import (
    CategoricalReference,
    DriftReference,
    NumericReference,
)
from modelship_runtime.drift.bins import categorical_bin_counts, numeric_bin_counts
from modelship_runtime.training.data import MISSING_CATEGORY

DECILES = np.linspace(0.1, 0.9, 9)
MAX_CATEGORIES = 50


def numeric(values: Any) -> NumericReference:
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = x[~np.isnan(x)]
    missing = float(1 - len(finite) / len(x)) if len(x) else 0.0
    if len(finite) == 0:
        return NumericReference(edges=[], proportions=[1.0], missing_ratio=missing)
    edges = np.unique(np.quantile(finite, DECILES)).tolist()
    counts = numeric_bin_counts(finite, edges)
    return NumericReference(
        edges=[float(e) for e in edges],
        proportions=(counts / counts.sum()).tolist(),
        missing_ratio=missing,
    )


def categorical(values: Any, categories: list[str] | None = None) -> CategoricalReference:
    raw = [str(v) for v in values]
    present = [v for v in raw if v != MISSING_CATEGORY]
    missing = float(1 - len(present) / len(raw)) if raw else 0.0
    if categories is None:
        ranked = sorted(Counter(present).items(), key=lambda kv: (-kv[1], kv[0]))
        categories = [k for k, _ in ranked[:MAX_CATEGORIES]]
    counts = categorical_bin_counts(present, categories)
    total = counts.sum()
    shares = (counts / total).tolist() if total else [0.0] * len(categories) + [1.0]
    return CategoricalReference(categories=categories, proportions=shares, missing_ratio=missing)


def build(
    X: pd.DataFrame,
    numeric_features: list[str],
    categorical_features: list[str],
    prediction: Any,
    classes: list[object] | None,
) -> DriftReference:
    """The reference over the training rows and the model's answers on them."""
    features: dict[str, NumericReference | CategoricalReference] = {}
    for col in X.columns:
        if col in numeric_features:
            features[col] = numeric(X[col])
        elif col in categorical_features:
            features[col] = categorical(X[col])
    pred: NumericReference | CategoricalReference
    if classes is not None:
        pred = categorical([str(v) for v in np.asarray(prediction).ravel()], [str(c) for c in classes])
    else:
        pred = numeric(prediction)
    return DriftReference(features=features, prediction=pred, rows=len(X))
