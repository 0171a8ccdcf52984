"""Drift statistics: hand-computed values, scipy on the same bins, zero counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from modelship_runtime.drift import stats
from modelship_runtime.drift.stats import State

RNG = np.random.default_rng(7)


def _random_counts(features: int, bins: int, n: int) -> np.ndarray:
    p = RNG.dirichlet(np.ones(bins), size=features)
    return np.stack([RNG.multinomial(n, row) for row in p]).astype(np.float64)


# --- PSI ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        ([0.5, 0.5], [0.5, 0.5], 0.0),
        # (0.5-0.25) ln 2 + (0.5-0.75) ln(2/3)
        ([0.5, 0.5], [0.25, 0.75], 0.25 * math.log(2) - 0.25 * math.log(2 / 3)),
        # (.25-.5) ln .5 + 0 + (.5-.25) ln 2
        ([1, 1, 2], [2, 1, 1], -0.25 * math.log(0.5) + 0.25 * math.log(2)),
        # counts normalise per row
        ([10, 30], [1, 3], 0.0),
    ],
)
def test_psi_hand_computed(ref: list[float], cur: list[float], expected: float) -> None:
    assert stats.psi(ref, cur)[0] == pytest.approx(expected, abs=1e-12)


def test_psi_zero_bin_uses_evidently_rule() -> None:
    # Current min nonzero is 0.5 > 1e-4, so the empty bin becomes 1e-4.
    ref, cur = [0.5, 0.5, 0.0], [0.5, 0.0, 0.5]
    r = [0.5, 0.5, 1e-4]
    c = [0.5, 1e-4, 0.5]
    expected = sum((a - b) * math.log(a / b) for a, b in zip(r, c, strict=True))
    assert stats.psi(ref, cur)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_zero_bin_tiny_minimum_divides_by_a_million() -> None:
    ref = np.array([1e-5, 0.5, 0.5 - 1e-5, 0.0])
    cur = np.array([0.25, 0.25, 0.25, 0.25])
    r = ref.copy()
    r[3] = 1e-5 / 1e6
    expected = float(np.sum((r - cur) * np.log(r / cur)))
    assert stats.psi(ref, cur, normalise=False)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_no_data_is_nan() -> None:
    assert math.isnan(stats.psi([1, 2], [0, 0])[0])


def test_psi_vectorised_with_padding_equals_per_feature() -> None:
    rows_r = [RNG.integers(1, 100, size=k) for k in (3, 7, 10)]
    rows_c = [RNG.integers(0, 100, size=k) for k in (3, 7, 10)]
    r, mask = stats.stack(rows_r)
    c, _ = stats.stack(rows_c)
    together = stats.psi(r, c, mask)
    one_by_one = [stats.psi(a, b)[0] for a, b in zip(rows_r, rows_c, strict=True)]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12)


def test_psi_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="same shape"):
        stats.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="negative"):
        stats.psi([1, -2], [1, 2])


# --- Jensen-Shannon --------------------------------------------------------


def test_js_matches_scipy_base2() -> None:
    r = _random_counts(20, 12, 5000)
    c = _random_counts(20, 12, 800)
    ours = stats.js_distance(r, c)
    theirs = [jensenshannon(a, b, base=2) for a, b in zip(r, c, strict=True)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        ([1, 0], [0, 1], 1.0),  # disjoint: the base-2 maximum
        ([1, 1], [1, 1], 0.0),
        # m = (0.5, 0.5): KL(r||m) = ln 2 (r = (1,0)), KL(c||m) = 0 -> sqrt(ln2/ln2/2)
        ([1, 0], [1, 1], math.sqrt(0.5 * (1.0 + 0.0))),
    ],
)
def test_js_hand_computed_and_zero_bins(ref: list[float], cur: list[float], expected: float) -> None:
    if ref == [1, 0] and cur == [1, 1]:
        # KL((1,0) || (.75,.25)) + KL((.5,.5) || (.75,.25)), base 2
        kl1 = math.log2(1 / 0.75)
        kl2 = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
        expected = math.sqrt((kl1 + kl2) / 2)
    assert stats.js_distance(ref, cur)[0] == pytest.approx(expected, abs=1e-12)
    assert stats.js_distance(ref, cur)[0] == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-12)


def test_js_with_zero_bins_matches_scipy() -> None:
    r = np.array([[0, 5, 5, 0], [3, 0, 0, 1]], dtype=float)
    c = np.array([[1, 0, 5, 0], [0, 0, 2, 2]], dtype=float)
    theirs = [jensenshannon(a, b, base=2) for a, b in zip(r, c, strict=True)]
    np.testing.assert_allclose(stats.js_distance(r, c), theirs, rtol=1e-9)


# --- chi-square ----------------------------------------------------------


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 9, 10, 29, 99, 500])
@pytest.mark.parametrize("x", [0.0, 0.01, 0.5, 1.0, 3.7, 10.0, 50.0, 200.0, 900.0])
def test_chi2_sf_matches_scipy(dof: int, x: float) -> None:
    theirs = float(sps.chi2.sf(x, dof))
    ours = stats.chi2_sf(x, dof)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)


def test_gamma_q_edges() -> None:
    assert stats.gamma_q(2.0, 0.0) == 1.0
    assert stats.gamma_q(2.0, math.inf) == 0.0
    assert math.isnan(stats.gamma_q(2.0, math.nan))
    assert stats.gamma_q(1.0, 2.0) == pytest.approx(math.exp(-2.0), rel=1e-14)
    with pytest.raises(ValueError):
        stats.gamma_q(0.0, 1.0)
    assert math.isnan(stats.chi2_sf(1.0, 0))


def test_chi_square_matches_scipy() -> None:
    ref = RNG.dirichlet(np.ones(10), size=30)
    cur = _random_counts(30, 10, 400)
    result = stats.chi_square(ref, cur, correction="none")
    for i in range(30):
        expected = ref[i] / ref[i].sum() * cur[i].sum()
        theirs = sps.chisquare(cur[i], expected)
        assert result.statistic[i] == pytest.approx(theirs.statistic, rel=1e-9)
        assert result.p_value[i] == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    assert (result.dof == 9).all()
    np.testing.assert_allclose(result.effect_size, np.sqrt(result.statistic / 400), rtol=1e-12)


def test_chi_square_hand_computed() -> None:
    # expected (25, 25, 50); observed (30, 20, 50): 1 + 1 + 0 = 2, dof 2, sf = exp(-1)
    result = stats.chi_square([0.25, 0.25, 0.5], [30, 20, 50])
    assert result.statistic[0] == pytest.approx(2.0)
    assert result.p_value[0] == pytest.approx(math.exp(-1.0), rel=1e-12)
    assert result.effect_size[0] == pytest.approx(math.sqrt(2 / 100))


def test_chi_square_zero_reference_bin_is_floored_and_detects_unseen_values() -> None:
    result = stats.chi_square([0.5, 0.5, 0.0], [45, 45, 10])
    p = np.array([0.5, 0.5, 1e-4]) / 1.0001
    expected = p * 100
    stat = float(np.sum((np.array([45, 45, 10]) - expected) ** 2 / expected))
    assert result.statistic[0] == pytest.approx(stat, rel=1e-12)
    assert result.p_value[0] < 1e-100


def test_chi_square_no_data_is_nan_and_not_counted_in_correction() -> None:
    result = stats.chi_square([[0.5, 0.5], [0.5, 0.5]], [[0, 0], [70, 30]])
    assert math.isnan(result.statistic[0]) and math.isnan(result.p_adjusted[0])
    assert result.p_adjusted[1] == pytest.approx(result.p_value[1])  # m = 1


def test_chi_square_with_padding() -> None:
    ref, mask = stats.stack([[0.2, 0.3, 0.5], [0.5, 0.5]])
    cur, _ = stats.stack([[20, 30, 50], [10, 30]])
    result = stats.chi_square(ref, cur, mask, correction="none")
    assert list(result.dof) == [2, 1]
    assert result.statistic[0] == pytest.approx(0.0, abs=1e-12)
    assert result.p_value[1] == pytest.approx(sps.chisquare([10, 30], [20, 20]).pvalue, rel=1e-9)


@pytest.mark.parametrize(
    ("p", "holm", "bonferroni"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06], [0.03, 0.12, 0.09]),
        ([0.5, 0.001], [0.5, 0.002], [1.0, 0.002]),
        ([0.2, math.nan, 0.01], [0.2, math.nan, 0.02], [0.4, math.nan, 0.02]),
        ([], [], []),
    ],
)
def test_corrections(p: list[float], holm: list[float], bonferroni: list[float]) -> None:
    np.testing.assert_allclose(stats.holm(p), holm, rtol=1e-12)
    np.testing.assert_allclose(stats.bonferroni(p), bonferroni, rtol=1e-12)


def test_holm_matches_statsmodels_definition_on_random_input() -> None:
    p = RNG.uniform(0, 0.2, size=25)
    order = np.argsort(p)
    m = p.size
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    np.testing.assert_allclose(stats.holm(p), expected, rtol=1e-12)


# --- Wasserstein, verdicts -----------------------------------------------


def test_wasserstein_binned_hand_computed() -> None:
    edges = [0.0, 1.0, 2.0]
    ref = [0.0, 0.5, 0.5, 0.0]  # mass at 1 and 2
    cur = [0.0, 0.0, 0.5, 0.5]  # mass at 2 and 2 (last bin sits at the last edge)
    # F_r(0)=0,F_r(1)=.5 ; F_c(0)=0,F_c(1)=0 -> W1 = 0.5 * 1; sd_ref = 0.5
    assert stats.wasserstein_binned(ref, cur, edges) == pytest.approx(1.0)
    assert stats.wasserstein_binned(ref, ref, edges) == 0.0
    assert math.isnan(stats.wasserstein_binned([1, 1], [1, 1], [0.0]))
    with pytest.raises(ValueError):
        stats.wasserstein_binned([1, 1], [1, 1, 1], [0.0])


def test_wasserstein_binned_close_to_scipy_on_fine_bins() -> None:
    x = RNG.normal(0, 1, 20000)
    y = RNG.normal(0.3, 1, 20000)
    edges = np.linspace(-5, 5, 401)
    hx = np.histogram(x, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    hy = np.histogram(y, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    theirs = sps.wasserstein_distance(x, y) / np.std(x)
    assert stats.wasserstein_binned(hx, hy, edges) == pytest.approx(theirs, rel=0.05)


@pytest.mark.parametrize(
    ("scores", "threshold", "warning", "expected"),
    [
        ([0.05, 0.1, 0.15, 0.2, 0.3], 0.2, 0.1, [0, 1, 1, 2, 2]),
        ([0.05, 0.3], 0.2, None, [0, 2]),
        ([math.nan], 0.2, 0.1, [0]),
    ],
)
def test_states(scores: list[float], threshold: float, warning: float | None, expected: list[int]) -> None:
    assert stats.states(scores, threshold, warning).tolist() == expected


@pytest.mark.parametrize(
    ("feature_states", "min_drifted", "expected"),
    [
        ([0, 0], 1, State.STABLE),
        ([0, 1], 1, State.WARNING),
        ([2, 0], 1, State.DRIFT),
        ([2, 0], 2, State.WARNING),
        ([2, 2, 0], 2, State.DRIFT),
        ([], 1, State.STABLE),
    ],
)
def test_overall_state(feature_states: list[int], min_drifted: int, expected: State) -> None:
    assert stats.overall_state(feature_states, min_drifted) is expected


def test_chi_square_states_need_effect_and_significance() -> None:
    big = stats.chi_square([0.5, 0.5], [51000, 49000])  # significant, tiny effect
    assert big.p_adjusted[0] < 0.05
    assert stats.chi_square_states(big, 0.2, 0.1).tolist() == [0]
    small = stats.chi_square([0.5, 0.5], [8, 2])  # big effect, not significant
    assert small.effect_size[0] > 0.5 and small.p_adjusted[0] > 0.05
    assert stats.chi_square_states(small, 0.2, 0.1).tolist() == [0]
    clear = stats.chi_square([0.5, 0.5], [700, 300])
    assert stats.chi_square_states(clear, 0.2, 0.1).tolist() == [2]


def test_mean_shift_of_a_third_sd_on_ten_quantile_bins_is_under_psi_01() -> None:
    # DESIGN.md: a +0.3 sd shift gives PSI about 0.085 on 10 training-quantile bins.
    edges = sps.norm.ppf(np.linspace(0.1, 0.9, 9))
    ref = np.full(10, 0.1)
    cdf = sps.norm.cdf(np.concatenate([edges, [np.inf]]), loc=0.3)
    cur = np.diff(np.concatenate([[0.0], cdf]))
    assert stats.psi(ref, cur)[0] == pytest.approx(0.085, abs=0.003)
