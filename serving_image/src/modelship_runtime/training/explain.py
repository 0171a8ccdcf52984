"""Permutation feature importance on the holdout, per input feature."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

N_REPEATS = 5
# Shuffling costs features x repeats predictions; a sample keeps it bounded
# (on 100k x 30 the whole holdout took longer than the search).
MAX_ROWS = 5000


def importance(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, scoring: Any, seed: int) -> dict[str, float]:
    """Mean drop of the selection score when one feature's values are shuffled."""
    if len(X) > MAX_ROWS:
        X = X.sample(n=MAX_ROWS, random_state=seed)
        y = y.loc[X.index]
    result = permutation_importance(
        pipeline, X, y, scoring=scoring, n_repeats=N_REPEATS, random_state=seed, n_jobs=1
    )
    means = result["importances_mean"]
    return {str(c): float(m) for c, m in zip(X.columns, means, strict=True)}
