"""Pure parts: drift reference, search planning and budget, reweighing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelship.api.trainingjob import Candidate, Metric, Search
from modelship_runtime.artifacts.metadata import OTHER_CATEGORY
from modelship_runtime.drift.bins import numeric_bin_counts
from modelship_runtime.training import fairness, metrics, reference, search
from modelship_runtime.training.errors import SpecError


def test_numeric_reference_uses_deduplicated_deciles() -> None:
    values = np.concatenate([np.zeros(80), np.arange(20, dtype=float), [np.nan] * 5])
    ref = reference.numeric(values)
    assert ref.edges == sorted(set(ref.edges)) and len(ref.edges) < 9
    assert abs(sum(ref.proportions) - 1) < 1e-12 and len(ref.proportions) == len(ref.edges) + 1
    assert ref.missing_ratio == pytest.approx(5 / 105)
    # The same bins the server counts with give the same shares.
    counts = numeric_bin_counts(values, ref.edges)
    assert np.allclose(counts / counts.sum(), ref.proportions)


def test_numeric_reference_continuous_has_ten_bins() -> None:
    ref = reference.numeric(np.random.default_rng(0).normal(size=1000))
    assert len(ref.edges) == 9
    assert np.allclose(ref.proportions, 0.1, atol=0.002)


def test_categorical_reference_keeps_the_most_frequent_and_an_other_bin() -> None:
    values = ["a"] * 5 + ["b"] * 3 + [""] * 2 + [f"rare{i}" for i in range(60)]
    ref = reference.categorical(values)
    assert ref.categories[:2] == ["a", "b"] and len(ref.categories) == reference.MAX_CATEGORIES
    assert len(ref.proportions) == len(ref.categories) + 1
    assert ref.proportions[-1] > 0  # rare values past the cap fall in __other__
    assert abs(sum(ref.proportions) - 1) < 1e-12 and ref.missing_ratio == pytest.approx(2 / 70)
    assert OTHER_CATEGORY not in ref.categories


def test_prediction_reference_for_classes_and_values() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    ref = reference.build(frame, ["x"], [], np.array([0, 1, 1, 1]), [0, 1, 2])
    assert ref.prediction is not None and ref.prediction.type == "categorical"
    assert ref.prediction.categories == ["0", "1", "2"]  # type: ignore[union-attr]
    assert ref.prediction.proportions == [0.25, 0.75, 0.0, 0.0]
    ref = reference.build(frame, ["x"], [], np.linspace(0, 1, 50), None)
    assert ref.prediction is not None and ref.prediction.type == "numeric" and ref.rows == 4


def test_grid_settings_are_the_product_in_a_fixed_order() -> None:
    cand = Candidate(estimator="LogisticRegression", params={"C": [1, 2], "tol": [0.1, 0.2]})
    settings = search.candidate_settings(cand, Search())
    assert settings == [{"C": 1, "tol": 0.1}, {"C": 1, "tol": 0.2}, {"C": 2, "tol": 0.1}, {"C": 2, "tol": 0.2}]


def test_random_settings_are_seeded_and_in_range() -> None:
    cand = Candidate.model_validate({"estimator": "RandomForest", "params": {"criterion": ["gini", "entropy"]},
                                     "distributions": {"max_depth": {"kind": "intUniform", "low": 2, "high": 5},
                                                       "min_samples_leaf": {"kind": "uniform", "low": 0.01, "high": 0.1}}})
    s = Search(strategy="random", random_iterations=8, seed=3)
    first, second = search.candidate_settings(cand, s), search.candidate_settings(cand, s)
    assert first == second and 1 < len(first) <= 8
    assert all(2 <= p["max_depth"] <= 5 and 0.01 <= p["min_samples_leaf"] <= 0.1 for p in first)
    bad = Candidate.model_validate({"estimator": "SVM", "distributions": {"C": {"kind": "logUniform", "low": 0, "high": 1}}})
    with pytest.raises(SpecError, match="logUniform needs low and high > 0"):
        search.candidate_settings(bad, s)


def test_budget_stops_the_search() -> None:
    from sklearn.datasets import load_iris

    from modelship.api.trainingjob import Pipeline as PipelineSpec
    from modelship_runtime.training.pipeline import build_pipeline

    X, y = load_iris(return_X_y=True, as_frame=True)
    cands = [Candidate(estimator="KNeighbors", params={"n_neighbors": [1, 3, 5, 7, 9]})]
    budget = Search(cv_folds=3, max_fits=2)
    plan = search.plan(cands, budget, True, lambda n, e: build_pipeline(PipelineSpec(), list(X.columns), [], e, 0), False)
    assert len(plan) == 5
    result = search.run(plan, X, y, budget, search.scorer(Metric.ACCURACY, [0, 1, 2]), True)
    assert len(result.trials) == 2 and result.stopped_by == "maxFits (2)"
    assert result.leaderboard()[0]["score"] == result.best.score


def test_reweighing_balances_group_and_label() -> None:
    y = pd.Series([1, 1, 1, 0, 1, 0, 0, 0])
    s = pd.Series(["a", "a", "a", "a", "b", "b", "b", "b"])
    w = fairness.reweighing(y, s)
    weighted = pd.DataFrame({"y": y, "s": s, "w": w}).groupby("s").apply(
        lambda g: (g["w"] * g["y"]).sum() / g["w"].sum(), include_groups=False)
    assert weighted["a"] == pytest.approx(weighted["b"])


@pytest.mark.parametrize(("metric", "new", "old", "by", "wins"), [
    ("accuracy", 0.91, 0.90, 0.0, True),
    ("accuracy", 0.91, 0.90, 0.02, False),
    ("rmse", 10.0, 12.0, 1.0, True),
    ("rmse", 11.5, 12.0, 1.0, False),
    ("log_loss", 0.3, 0.2, 0.0, False),
])
def test_better_respects_direction(metric: str, new: float, old: float, by: float, wins: bool) -> None:
    assert metrics.better(metric, new, old, by) is wins


def test_time_budget_stops_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_iris

    from modelship.api.trainingjob import Pipeline as PipelineSpec
    from modelship_runtime.training.pipeline import build_pipeline

    X, y = load_iris(return_X_y=True, as_frame=True)
    clock = iter(float(t) for t in range(0, 1000, 2))  # every reading is 2 s later
    monkeypatch.setattr(search.time, "monotonic", lambda: next(clock))
    budget = Search(cv_folds=3, max_seconds=5)
    cands = [Candidate(estimator="KNeighbors", params={"n_neighbors": [1, 3, 5, 7, 9]})]
    plan = search.plan(cands, budget, True, lambda n, e: build_pipeline(PipelineSpec(), list(X.columns), [], e, 0), False)
    result = search.run(plan, X, y, budget, search.scorer(Metric.ACCURACY, [0, 1, 2]), True)
    assert 1 <= len(result.trials) < 5 and result.stopped_by == "maxSeconds (5)"
