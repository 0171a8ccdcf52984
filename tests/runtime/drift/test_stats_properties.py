"""Properties of the drift statistics on arbitrary histograms (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from modelship_runtime.drift import stats
from modelship_runtime.drift.window import window_counts

counts = st.lists(st.integers(0, 10_000), min_size=2, max_size=30)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    a = draw(counts.filter(lambda x: sum(x) > 0))
    b = draw(st.lists(st.integers(0, 10_000), min_size=len(a), max_size=len(a)).filter(lambda x: sum(x) > 0))
    return a, b


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_psi_is_non_negative_and_zero_on_equal(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    assert stats.psi(a, b)[0] >= -1e-12
    assert stats.psi(a, a)[0] == 0.0


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_js_is_bounded_symmetric_and_equals_scipy(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    d = stats.js_distance(a, b)[0]
    assert 0.0 <= d <= 1.0 + 1e-12
    assert d == stats.js_distance(b, a)[0] or math.isclose(d, stats.js_distance(b, a)[0], rel_tol=1e-12)
    assert math.isclose(d, jensenshannon(a, b, base=2), rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=150, deadline=None)
@given(st.floats(0, 2000, allow_nan=False), st.integers(1, 300))
def test_chi2_sf_equals_scipy(x: float, dof: int) -> None:
    assert math.isclose(stats.chi2_sf(x, dof), float(sps.chi2.sf(x, dof)), rel_tol=1e-9, abs_tol=1e-300)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40))
def test_holm_is_between_raw_and_bonferroni(p: list[float]) -> None:
    holm = stats.holm(p)
    bonf = stats.bonferroni(p)
    raw = np.asarray(p)
    assert np.all(holm >= raw - 1e-15) and np.all(holm <= bonf + 1e-15)
    # Monotone in the raw p-values.
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(holm[order]) >= -1e-15)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.lists(st.integers(0, 100), min_size=3, max_size=3)),
       st.dictionaries(st.sampled_from("abcdef"), st.lists(st.integers(0, 100), min_size=3, max_size=3)))
def test_window_counts_are_never_negative(old: dict[str, list[int]], new: dict[str, list[int]]) -> None:
    w = window_counts(old, new, bins=3)
    assert np.all(w.counts >= 0)
    assert w.total <= sum(sum(v) for v in new.values())
