"""The search as cells: one cell is one parameter setting scored on one CV fold.

Cells are numbered setting-major (setting 0 fold 0, setting 0 fold 1, ...)
over the settings ``search.plan`` lists and the folds ``fold_indices`` cuts
from the spec's seed, so the numbering is a function of the spec and the
data alone. A search of N shares gives share i the cells ``i, i+N, i+2N, ...``
(round robin: neighbouring cells, which often differ in cost along one grid
axis, go to different shares). Every cell is scored exactly as
``cross_validate`` scores a fold: a fresh clone fitted on the fold's training
rows, scored on its test rows; so the per-setting mean and deviation, hence
the ranking, do not depend on which process scored which cell.

Budget: a share starts no new setting once its deadline has passed, but
finishes the setting it is in (a single share is then exactly the loop the
trainer always ran: whole settings, in order, the first always scored).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from modelship_runtime.training.pipeline import ESTIMATOR_STEP

Folds = list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
Clock = Callable[[], float]


@dataclass(frozen=True, order=True)
class Cell:
    setting: int
    fold: int


@dataclass
class CellResult:
    """One scored cell: a score, or the error that stopped it."""

    setting: int
    fold: int
    score: float | None
    error: str | None = None
    seconds: float = 0.0
    # Not fitted: an earlier fold of the same setting failed in this share
    # (cross_validate stops a setting at its first failure, so do we).
    after_failure: bool = False


@dataclass
class SettingScore:
    """One setting's cross-validated result, aggregated from its cells."""

    score: float | None
    std: float | None
    error: str | None
    seconds: float


def enumerate_cells(settings: int, folds: int) -> list[Cell]:
    return [Cell(s, f) for s in range(settings) for f in range(folds)]


def share(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """The cells share ``index`` of ``count`` scores (round robin)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"share {index} of {count} does not exist")
    return list(cells[index::count])


def splitter(classification: bool, folds: int, seed: int) -> KFold | StratifiedKFold:
    if classification:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def fold_indices(X: pd.DataFrame, y: pd.Series, classification: bool, folds: int, seed: int) -> Folds:
    """(train rows, test rows) per fold: fixed by the seed, the same in every process."""
    return list(splitter(classification, folds, seed).split(X, y))


def score_cell(
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series,
    fold: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    score_fn: Any,
    sample_weight: np.ndarray[Any, Any] | None = None,
) -> float:
    """What ``cross_validate`` does for one fold: clone, fit on train rows, score test rows."""
    train, test = fold
    estimator = clone(pipeline)
    params = {f"{ESTIMATOR_STEP}__sample_weight": sample_weight[train]} if sample_weight is not None else {}
    estimator.fit(X.iloc[train], y.iloc[train], **params)
    return float(score_fn(estimator, X.iloc[test], y.iloc[test]))


def evaluate(
    cells: Sequence[Cell],
    pipelines: Sequence[Any],
    X: pd.DataFrame,
    y: pd.Series,
    folds: Folds,
    score_fn: Any,
    sample_weight: np.ndarray[Any, Any] | None = None,
    deadline: float | None = None,
    clock: Clock = time.monotonic,
    on_cell: Callable[[CellResult], None] | None = None,
) -> tuple[list[CellResult], list[Cell]]:
    """Score ``cells`` in order; returns (results, cells skipped by the deadline).

    A cell that raises is recorded with its error (a setting that cannot fit
    is a finding, not a crash).
    """
    results: list[CellResult] = []
    skipped: list[Cell] = []
    failed: set[int] = set()
    current: int | None = None
    for cell in cells:
        new_setting = cell.setting != current
        if skipped or (new_setting and results and deadline is not None and clock() >= deadline):
            skipped.append(cell)
            continue
        current = cell.setting
        if cell.setting in failed:
            results.append(CellResult(cell.setting, cell.fold, None, after_failure=True))
            continue
        started = clock()
        try:
            result = CellResult(cell.setting, cell.fold,
                                score_cell(pipelines[cell.setting], X, y, folds[cell.fold], score_fn, sample_weight))
        except Exception as exc:  # recorded per cell; aggregate() makes it the setting's error
            result = CellResult(cell.setting, cell.fold, None, f"{type(exc).__name__}: {exc}")
        result.seconds = clock() - started
        if result.error is not None:
            failed.add(cell.setting)
        results.append(result)
        if on_cell is not None:
            on_cell(result)
    return results, skipped


def aggregate(settings: int, folds: int, results: Sequence[CellResult]) -> list[SettingScore | None]:
    """Per setting: mean and std over its folds (as ``cross_validate`` gives them), or None when
    not every fold was scored. A setting with a failed fold takes the first failure (in fold order)."""
    table: dict[Cell, CellResult] = {}
    for r in results:
        table[Cell(r.setting, r.fold)] = r
    out: list[SettingScore | None] = []
    for s in range(settings):
        row = [table.get(Cell(s, f)) for f in range(folds)]
        if any(r is None for r in row):
            out.append(None)
            continue
        done = [r for r in row if r is not None]
        seconds = float(sum(r.seconds for r in done))
        failed = next((r for r in done if r.error is not None), None)
        if failed is not None or any(r.score is None for r in done):
            out.append(SettingScore(None, None, failed.error if failed else "no score", seconds))
            continue
        scores = np.asarray([r.score for r in done], dtype=np.float64)
        mean = float(scores.mean())
        if not np.isfinite(mean):
            out.append(SettingScore(None, None, "score is not finite", seconds))
        else:
            out.append(SettingScore(mean, float(scores.std()), None, seconds))
    return out
