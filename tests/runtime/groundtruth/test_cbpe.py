"""CBPE: calibration checked on the holdout, and estimates against realised quality on shifted streams."""

from __future__ import annotations

import numpy as np
import pytest
from groundtruth_helpers import Loans, frame
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from modelship.demo import data
from modelship_runtime.groundtruth import cbpe


def test_isotonic_map_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    score = rng.uniform(size=3000)
    y = rng.uniform(size=3000) < score**3
    calibration = cbpe.check(score, y)
    assert calibration.method == "isotonic"
    assert calibration.ece > 0.1 > calibration.ece_calibrated  # type: ignore[operator]
    expected = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(score, y).predict(score)
    np.testing.assert_allclose(cbpe.apply(score, calibration), expected, atol=1e-6)
    assert len(calibration.x) < 100  # equal neighbours merged


def test_calibrated_scores_keep_no_map() -> None:
    rng = np.random.default_rng(4)
    score = rng.uniform(size=3000)
    y = rng.uniform(size=3000) < score
    calibration = cbpe.check(score, y)
    assert calibration.method == "none" and calibration.x == []
    assert calibration.ece < 0.03 and len(calibration.reliability) == 10
    np.testing.assert_array_equal(cbpe.apply(score, calibration), score)


@pytest.mark.parametrize(("case", "expected"), [
    ("perfect", 1.0), ("reversed", 0.0), ("all tied", 0.5),
])
def test_expected_roc_auc_edges(case: str, expected: float) -> None:
    score = {"perfect": np.array([0.9, 0.8, 0.2, 0.1]), "reversed": np.array([0.1, 0.2, 0.8, 0.9]),
             "all tied": np.full(4, 0.5)}[case]
    p = np.array([1.0, 1.0, 0.0, 0.0])
    assert cbpe.expected_roc_auc(score, p) == pytest.approx(expected)


def test_expected_roc_auc_is_the_mean_auc_of_sampled_labels() -> None:
    rng = np.random.default_rng(5)
    score = rng.uniform(size=2000)
    p = np.clip(score + rng.normal(scale=0.1, size=2000), 0.01, 0.99)
    sampled = [roc_auc_score(rng.uniform(size=2000) < p, score) for _ in range(200)]
    assert cbpe.expected_roc_auc(score, p) == pytest.approx(np.mean(sampled), abs=0.003)
    assert cbpe.expected_accuracy(p, score > 0.5) == pytest.approx(np.where(score > 0.5, p, 1 - p).mean())


def _estimate_vs_realised(loans: Loans, shift: data.Shift, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    rows = frame(5000, seed=seed, shift=shift)
    _, outputs = loans.predict(rows)
    score = outputs["probabilities"][:, 1]
    label = outputs["label"].reshape(-1)
    estimate = cbpe.estimate(score, label == 1, loans.metadata.calibration)
    truth = rows[data.TARGET].to_numpy()
    realised = {"roc_auc": roc_auc_score(truth, score), "accuracy": accuracy_score(truth, label)}
    return estimate, realised


def test_the_trainer_records_calibration_on_its_holdout(loans: Loans) -> None:
    c = loans.metadata.calibration
    assert c is not None and c.rows == 800  # 20% of 4000
    assert c.method in ("none", "isotonic") and 0 <= c.ece < 0.1 and c.brier is not None
    assert sum(b[2] for b in c.reliability) == c.rows


@pytest.mark.parametrize("shift", [data.NO_SHIFT, data.DEMO_SHIFT, data.Shift(income_sd=0.5, debt_ratio_sd=-0.5)],
                         ids=["unshifted", "demo-covariate-shift", "mild-covariate-shift"])
def test_estimate_is_within_003_of_realised_under_covariate_shift(loans: Loans, shift: data.Shift) -> None:
    estimate, realised = _estimate_vs_realised(loans, shift, seed=101)
    print(f"estimate {estimate} realised {realised}")
    assert abs(estimate["roc_auc"] - realised["roc_auc"]) < 0.03
    assert abs(estimate["accuracy"] - realised["accuracy"]) < 0.03


def test_a_changed_concept_is_what_the_estimate_cannot_see(loans: Loans) -> None:
    """Same inputs, new rule: the estimate stays where it was; only labels show the drop."""
    estimate, realised = _estimate_vs_realised(loans, data.CONCEPT_SHIFT, seed=102)
    assert estimate["accuracy"] - realised["accuracy"] > 0.05
