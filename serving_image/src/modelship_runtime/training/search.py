"""Model selection: cross-validated grid or random search under a budget.

The search is a plain loop over (candidate, parameter setting) so the budget
(max fits, max seconds) is exact and the order, hence the result, is fixed
by the spec and the seed. Scores are scikit-learn scores (higher is better).
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
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from modelship.api.trainingjob import Candidate, DistributionKind, Metric, Search, SearchStrategy
from modelship_runtime.training import registry
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


def splitter(classification: bool, folds: int, seed: int) -> KFold | StratifiedKFold:
    if classification:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def run(
    settings: list[Setting],
    X: pd.DataFrame,
    y: pd.Series,
    search: Search,
    score_fn: Any,
    classification: bool,
    sample_weight: np.ndarray[Any, Any] | None = None,
) -> SearchResult:
    """Cross-validate the settings within the budget and refit the best on all of X."""
    cv = splitter(classification, search.cv_folds, search.seed)
    deadline = time.monotonic() + search.max_seconds
    trials: list[Trial] = []
    stopped_by: str | None = None
    best_index: int | None = None
    fit_params = {f"{ESTIMATOR_STEP}__sample_weight": sample_weight} if sample_weight is not None else None
    for index, setting in enumerate(settings):
        if index >= search.max_fits:
            stopped_by = f"maxFits ({search.max_fits})"
            break
        if index > 0 and time.monotonic() >= deadline:
            stopped_by = f"maxSeconds ({search.max_seconds})"
            break
        started = time.monotonic()
        try:
            result = cross_validate(
                setting.pipeline, X, y, cv=cv, scoring=score_fn, params=fit_params, error_score="raise"
            )
            scores = np.asarray(result["test_score"], dtype=np.float64)
            trial = Trial(setting.estimator, setting.params, float(scores.mean()), float(scores.std()))
            if not np.isfinite(trial.score or np.nan):
                trial = Trial(setting.estimator, setting.params, None, None, error="score is not finite")
        except Exception as exc:  # a setting that cannot fit is recorded, not fatal
            trial = Trial(setting.estimator, setting.params, None, None, error=f"{type(exc).__name__}: {exc}")
        trial.seconds = time.monotonic() - started
        trials.append(trial)
        if trial.score is not None and (best_index is None or trial.score > (trials[best_index].score or -np.inf)):
            best_index = len(trials) - 1
    if best_index is None:
        errors = "; ".join(f"{t.estimator} {t.params}: {t.error}" for t in trials[:5])
        raise SpecError(f"no candidate could be fitted: {errors}")
    best = trials[best_index]
    pipeline = clone(settings[best_index].pipeline)
    pipeline.fit(X, y, **(fit_params or {}))
    return SearchResult(best=best, best_pipeline=pipeline, trials=trials, stopped_by=stopped_by)
