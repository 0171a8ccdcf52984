"""Model selection: cross-validated grid or random search under a budget.

The search is a plain loop over (candidate, parameter setting) so the budget
(max fits, max seconds) is exact and the order, hence the result, is fixed
by the spec and the seed. Scores are scikit-learn scores (higher is better).
Each setting is scored fold by fold as ``cells`` (the unit a fanned-out
search shares out); ``collect`` and ``refit`` turn the cells into the
leaderboard and the chosen pipeline, wherever the cells were scored.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, get_scorer, make_scorer, precision_score, recall_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from modelship.api.trainingjob import Candidate, DistributionKind, Metric, Search, SearchStrategy
from modelship_runtime.training import cells, registry
from modelship_runtime.training.errors import SpecError
from modelship_runtime.training.pipeline import ESTIMATOR_STEP

REGRESSION_METRICS = frozenset({Metric.R2, Metric.RMSE, Metric.MAE})


@dataclass
class Setting:
    estimator: str
    params: dict[str, Any]
    pipeline: Pipeline


@dataclass
class Trial:
    estimator: str
    params: dict[str, Any]
    score: float | None
    std: float | None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class SearchResult:
    best: Trial
    best_pipeline: Pipeline
    trials: list[Trial] = field(default_factory=list)
    stopped_by: str | None = None

    def leaderboard(self, top: int = 10) -> list[dict[str, Any]]:
        done = [t for t in self.trials if t.score is not None]
        done.sort(key=lambda t: -(t.score or 0.0))
        return [
            {"estimator": t.estimator, "params": t.params, "score": t.score, "std": t.std}
            for t in done[:top]
        ]


def scorer(metric: Metric, classes: list[object] | None) -> Any:
    """The scikit-learn scorer for a metric, with the positive class named for binary."""
    binary = classes is not None and len(classes) == 2
    pos = classes[-1] if binary and classes else None
    if metric in (Metric.F1, Metric.PRECISION, Metric.RECALL):
        fn = {Metric.F1: f1_score, Metric.PRECISION: precision_score, Metric.RECALL: recall_score}[metric]
        if binary:
            return make_scorer(fn, pos_label=pos, zero_division=0)
        return make_scorer(fn, average="macro", zero_division=0)
    name = {
        Metric.ROC_AUC: "roc_auc" if binary else "roc_auc_ovr",
        Metric.LOG_LOSS: "neg_log_loss",
        Metric.RMSE: "neg_root_mean_squared_error",
        Metric.MAE: "neg_mean_absolute_error",
    }.get(metric, str(metric))
    return get_scorer(name)


def check_metric(metric: Metric, classification: bool) -> None:
    if classification and metric in REGRESSION_METRICS:
        raise SpecError(f"metric {metric} is for regression but the task is classification; use e.g. accuracy")
    if not classification and metric not in REGRESSION_METRICS:
        raise SpecError(f"metric {metric} is for classification but the task is regression; use r2, rmse or mae")


def _sample(candidate: Candidate, rng: np.random.RandomState) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in sorted(candidate.params):
        values = candidate.params[name]
        params[name] = values[int(rng.randint(len(values)))]
    for name in sorted(candidate.distributions):
        d = candidate.distributions[name]
        kind = DistributionKind(d.kind)
        if kind == DistributionKind.UNIFORM:
            params[name] = float(rng.uniform(d.low, d.high))
        elif kind == DistributionKind.LOG_UNIFORM:
            if d.low <= 0 or d.high <= 0:
                raise SpecError(f"{candidate.estimator}.distributions.{name}: logUniform needs low and high > 0")
            params[name] = float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
        else:
            params[name] = int(rng.randint(int(d.low), int(d.high) + 1))
    return params


def candidate_settings(candidate: Candidate, search: Search) -> list[dict[str, Any]]:
    """The parameter settings to try for one candidate, in a fixed order."""
    for name, values in candidate.params.items():
        if not values:
            raise SpecError(f"{candidate.estimator}.params.{name}: give at least one value")
    for name, d in candidate.distributions.items():
        if d.high < d.low:
            raise SpecError(f"{candidate.estimator}.distributions.{name}: high is below low")
    if SearchStrategy(search.strategy) == SearchStrategy.GRID:
        if candidate.distributions:
            raise SpecError(
                f"{candidate.estimator}: distributions need search.strategy random; "
                "for grid search list values under params"
            )
        names = sorted(candidate.params)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(candidate.params[n] for n in names))]
    if not candidate.distributions and not candidate.params:
        return [{}]
    rng = np.random.RandomState(search.seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(search.random_iterations):
        params = _sample(candidate, rng)
        key = repr(sorted(params.items()))
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def _validate(pipeline: Pipeline, estimator: str, params: dict[str, Any]) -> None:
    est = pipeline.named_steps[ESTIMATOR_STEP]
    try:
        pipeline.set_params(**{f"{ESTIMATOR_STEP}__{k}": v for k, v in params.items()})
        validate = getattr(est, "_validate_params", None)
        if validate is not None:
            validate()
        inner = getattr(est, "estimator", None)
        if inner is not None and getattr(inner, "_validate_params", None) is not None:
            inner._validate_params()
    except (ValueError, TypeError) as exc:
        allowed = sorted(k for k in est.get_params(deep=True) if "__" not in k or k.startswith("estimator__"))
        raise SpecError(f"{estimator} parameters {params}: {exc}; known parameters: {', '.join(allowed)}") from None


def plan(
    candidates: list[Candidate],
    search: Search,
    classification: bool,
    make_pipeline: Any,
    weighted: bool,
) -> list[Setting]:
    """Every (estimator, params) to try, each a configured pipeline; spec errors up front."""
    settings: list[Setting] = []
    for candidate in candidates:
        name = str(candidate.estimator)
        try:
            estimator, prefix = registry.build(name, classification, search.seed)
        except KeyError as exc:
            raise SpecError(str(exc.args[0])) from None
        if weighted and not has_fit_parameter(estimator, "sample_weight"):
            raise SpecError(f"{name} takes no sample weights, so fairness mitigation reweighing cannot apply; drop one of them")
        for params in candidate_settings(candidate, search):
            pipeline = make_pipeline(name, clone(estimator))
            _validate(pipeline, name, {prefix + k: v for k, v in params.items()})
            settings.append(Setting(estimator=name, params=params, pipeline=pipeline))
    return settings


def budgeted(settings: list[Setting], search: Search) -> tuple[list[Setting], str | None]:
    """The settings the budget allows (the first maxFits), and why any were cut."""
    if len(settings) > search.max_fits:
        return settings[: search.max_fits], f"maxFits ({search.max_fits})"
    return settings, None


def best_index(trials: list[Trial]) -> int | None:
    """The first trial with the highest score: ties go to the earlier setting."""
    best: int | None = None
    for i, trial in enumerate(trials):
        if trial.score is not None and (best is None or trial.score > (trials[best].score or -np.inf)):
            best = i
    return best


def collect(
    settings: list[Setting], folds: int, results: list[cells.CellResult], stopped_by: str | None
) -> tuple[list[Trial], list[int], str | None]:
    """Trials of the settings whose every fold was scored, in setting order, and their indexes.

    A setting missing a fold (the time budget stopped it) is left out, as
    the single-process loop leaves out the settings it did not reach.
    """
    trials: list[Trial] = []
    kept: list[int] = []
    for i, agg in enumerate(cells.aggregate(len(settings), folds, results)):
        if agg is None:
            continue
        trial = Trial(settings[i].estimator, settings[i].params, agg.score, agg.std, agg.error, agg.seconds)
        trials.append(trial)
        kept.append(i)
    return trials, kept, stopped_by


def refit(
    settings: list[Setting],
    trials: list[Trial],
    kept: list[int],
    X: pd.DataFrame,
    y: pd.Series,
    stopped_by: str | None,
    sample_weight: np.ndarray[Any, Any] | None = None,
) -> SearchResult:
    """Pick the best trial (ties: the earlier setting) and fit its pipeline on all of X."""
    best = best_index(trials)
    if best is None:
        errors = "; ".join(f"{t.estimator} {t.params}: {t.error}" for t in trials[:5])
        raise SpecError(f"no candidate could be fitted: {errors}")
    pipeline = clone(settings[kept[best]].pipeline)
    fit_params = {f"{ESTIMATOR_STEP}__sample_weight": sample_weight} if sample_weight is not None else {}
    pipeline.fit(X, y, **fit_params)
    return SearchResult(best=trials[best], best_pipeline=pipeline, trials=trials, stopped_by=stopped_by)


def run(
    settings: list[Setting],
    X: pd.DataFrame,
    y: pd.Series,
    search: Search,
    score_fn: Any,
    classification: bool,
    sample_weight: np.ndarray[Any, Any] | None = None,
) -> SearchResult:
    """Cross-validate the settings within the budget and refit the best on all of X.

    The single-process search: every cell in one share, then the refit. A
    fanned-out search (``fanout``) scores the same cells in N processes and
    ends in the same ``collect`` and ``refit``.
    """
    allowed, stopped_by = budgeted(settings, search)
    folds = cells.fold_indices(X, y, classification, search.cv_folds, search.seed)
    deadline = time.monotonic() + search.max_seconds
    results, skipped = cells.evaluate(
        cells.enumerate_cells(len(allowed), len(folds)), [s.pipeline for s in allowed],
        X, y, folds, score_fn, sample_weight, deadline,
    )
    if skipped:
        stopped_by = f"maxSeconds ({search.max_seconds})"
    trials, kept, stopped_by = collect(allowed, len(folds), results, stopped_by)
    return refit(allowed, trials, kept, X, y, stopped_by, sample_weight)
