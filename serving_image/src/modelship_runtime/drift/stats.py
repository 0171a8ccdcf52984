"""Drift statistics on binned data, vectorised over many features at once.

Pure numpy and ``math`` (no scipy: the operator and server images do not ship
it). Every function takes ``reference`` and ``current`` as 2-D arrays of shape
``[features, bins]`` holding counts or proportions (each row is normalised
here), plus an optional boolean ``mask`` of the same shape marking real bins,
so features with different bin counts share one padded matrix (see
:func:`stack`). A 1-D input is one feature. Results have shape ``[features]``.

The statistics, and exactly what they do at zero counts:

* :func:`psi`, population stability index
  ``sum((r - c) * ln(r / c))`` (natural log). Zero proportions are replaced,
  per distribution and without renormalising, by ``min(nonzero) / 1e6`` when
  that minimum is at most 1e-4, else by 1e-4. This is Evidently 0.7.23's rule,
  so given the same bins our values equal Evidently's. A row with no
  observations at all scores NaN.
* :func:`js_distance`, Jensen-Shannon distance, **base 2** (so it lies in
  [0, 1]): ``sqrt((KL(r||m) + KL(c||m)) / 2)``, ``m = (r + c) / 2``, with
  ``0 * log 0 = 0``. No smoothing is needed. Equal to
  ``scipy.spatial.distance.jensenshannon(r, c, base=2)``.
* :func:`chi_square`, Pearson's goodness-of-fit test of the current counts
  against the reference proportions (expected = n * reference share), with
  ``bins - 1`` degrees of freedom, p-values from the regularised upper
  incomplete gamma function (:func:`chi2_sf`), corrected for testing many
  features by Holm (default) or Bonferroni. Zero reference proportions are
  replaced by 1e-4 and the row renormalised (an unseen bin with live values is
  then strong evidence of drift, never a division by zero). It also returns
  Cohen's effect size ``w = sqrt(chi2 / n)``: on large windows every p-value
  is tiny, so a feature should only drift when the effect is large enough too.
* :func:`wasserstein_binned`, an optional normalised Wasserstein-1 distance
  computed from the bins alone (see its docstring for the approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

PSI_FLOOR = 1e-4  # Evidently's fallback replacement for empty bins
CHI2_FLOOR = 1e-4  # replacement for zero reference proportions in chi-square


class State(IntEnum):
    """A feature's verdict; also the value of ``modelship_drift_state``."""

    STABLE = 0
    WARNING = 1
    DRIFT = 2


def stack(rows: Sequence[npt.ArrayLike]) -> tuple[Array, BoolArray]:
    """Pad 1-D rows of different lengths into ``[len(rows), max_len]`` and a mask of real bins."""
    arrays = [np.asarray(r, dtype=np.float64).ravel() for r in rows]
    width = max((a.size for a in arrays), default=0)
    out = np.zeros((len(arrays), width), dtype=np.float64)
    mask = np.zeros((len(arrays), width), dtype=np.bool_)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
        mask[i, : a.size] = True
    return out, mask


def _prepare(
    reference: npt.ArrayLike, current: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[Array, Array, BoolArray]:
    r = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    c = np.atleast_2d(np.asarray(current, dtype=np.float64))
    if r.shape != c.shape:
        raise ValueError(f"reference {r.shape} and current {c.shape} must have the same shape")
    if np.any(r < 0) or np.any(c < 0):
        raise ValueError("counts and proportions must not be negative")
    m = np.ones(r.shape, dtype=np.bool_) if mask is None else np.atleast_2d(np.asarray(mask, dtype=np.bool_))
    if m.shape != r.shape:
        raise ValueError(f"mask {m.shape} must have the shape of the data {r.shape}")
    return np.where(m, r, 0.0), np.where(m, c, 0.0), m


def _normalise(x: Array) -> Array:
    total = x.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = x / total  # a row with no data becomes NaN
    return out


def _evidently_fill(p: Array, mask: BoolArray) -> Array:
    nonzero = np.where((p > 0) & mask, p, np.inf).min(axis=1, keepdims=True)
    fill = np.where(nonzero <= PSI_FLOOR, nonzero / 1e6, PSI_FLOOR)
    return np.where((p == 0) & mask, fill, p)


def psi(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    normalise: bool = True,
) -> Array:
    """Population stability index per feature (natural log; Evidently's zero-count rule).

    ``normalise=False`` takes the rows as proportions already (as Evidently
    computes them, ``counts / len(data)``), so the bench compares bit for bit.
    """
    r, c, m = _prepare(reference, current, mask)
    if normalise:
        r, c = _normalise(r), _normalise(c)
    r, c = _evidently_fill(r, m), _evidently_fill(c, m)
    # Padding bins hold 1 in both rows: (1 - 1) * ln(1) = 0.
    r, c = np.where(m, r, 1.0), np.where(m, c, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (r - c) * np.log(r / c)
    out: Array = terms.sum(axis=1)
    return out


def js_distance(reference: npt.ArrayLike, current: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> Array:
    """Jensen-Shannon distance per feature, base 2 (0 = same, 1 = disjoint)."""
    r, c, _ = _prepare(reference, current, mask)
    r, c = _normalise(r), _normalise(c)
    mid = (r + c) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.where(r > 0, r * np.log(r / mid), 0.0)
        right = np.where(c > 0, c * np.log(c / mid), 0.0)
    js = (left.sum(axis=1) + right.sum(axis=1)) / math.log(2.0)
    out: Array = np.sqrt(np.maximum(js, 0.0) / 2.0)
    return out


# --- chi-square -----------------------------------------------------------

_EPS = 1e-16
_MAX_ITER = 100_000
_TINY = 1e-300


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    n = a
    for _ in range(_MAX_ITER):
        n += 1.0
        term *= x / n
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    # Modified Lentz evaluation of the continued fraction for Q(a, x).
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a)."""
    if a <= 0:
        raise ValueError("a must be positive")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def chi2_sf(statistic: float, dof: float) -> float:
    """Survival function of the chi-square distribution: P(X >= statistic)."""
    if dof <= 0:
        return math.nan
    return gamma_q(dof / 2.0, statistic / 2.0)


def holm(p_values: npt.ArrayLike) -> Array:
    """Holm-Bonferroni adjusted p-values (step-down; NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bonferroni(p_values: npt.ArrayLike) -> Array:
    """Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = int(np.count_nonzero(~np.isnan(p)))
    out: Array = np.minimum(1.0, p * m)
    return out


@dataclass(frozen=True)
class ChiSquare:
    """Per feature: statistic, degrees of freedom, raw and corrected p-value, effect size."""

    statistic: Array
    dof: npt.NDArray[np.int64]
    p_value: Array
    p_adjusted: Array
    effect_size: Array  # Cohen's w = sqrt(chi2 / n)
    samples: Array


def chi_square(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    correction: Literal["holm", "bonferroni", "none"] = "holm",
) -> ChiSquare:
    """Goodness of fit of current counts to reference proportions, per feature.

    ``current`` must hold counts. A feature with no current observations gets
    NaN everywhere and is left out of the correction.
    """
    r, c, m = _prepare(reference, current, mask)
    p = _normalise(r)
    p = np.where(m & (p == 0), CHI2_FLOOR, p)
    p = np.where(m, p, 0.0)
    p = _normalise(p)
    n = c.sum(axis=1)
    expected = p * n[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(m, (c - expected) ** 2 / expected, 0.0)
    stat = terms.sum(axis=1)
    stat = np.where(n > 0, stat, np.nan)
    dof = m.sum(axis=1).astype(np.int64) - 1
    pv = np.array(
        [chi2_sf(float(s), float(d)) if not math.isnan(s) else math.nan for s, d in zip(stat, dof, strict=True)],
        dtype=np.float64,
    )
    if correction == "holm":
        adjusted = holm(pv)
    elif correction == "bonferroni":
        adjusted = bonferroni(pv)
    else:
        adjusted = pv.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.sqrt(stat / n)
    return ChiSquare(stat, dof, pv, adjusted, w, n)


# --- Wasserstein ------------------------------------------------------------


def wasserstein_binned(
    reference: npt.ArrayLike, current: npt.ArrayLike, edges: Sequence[float]
) -> float:
    """Wasserstein-1 distance between two histograms on the same edges, over the reference sd.

    The bins follow the project's convention (``len(edges) + 1`` bins, bin i
    is ``(e_{i-1}, e_i]``). Each bin's mass is placed at its right edge and the
    last bin's at the last edge, so W1 = sum_i |F_r(e_i) - F_c(e_i)| *
    (e_{i+1} - e_i): exact for that representation, an approximation of the
    distance between the raw values (mass beyond the outer edges is not seen).
    Normalised by the reference's standard deviation in the same
    representation (Evidently's "normed" Wasserstein does the same on raw
    values). Returns NaN when the reference has no spread.
    """
    e = np.asarray(edges, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(current, dtype=np.float64).ravel()
    if r.size != e.size + 1 or c.size != e.size + 1:
        raise ValueError("histograms need len(edges) + 1 bins")
    r = r / r.sum()
    c = c / c.sum()
    if e.size < 2:
        return math.nan
    fr = np.cumsum(r)[: e.size - 1]
    fc = np.cumsum(c)[: e.size - 1]
    w1 = float(np.sum(np.abs(fr - fc) * np.diff(e)))
    points = np.concatenate([e, e[-1:]])
    mean = float(np.sum(r * points))
    sd = math.sqrt(float(np.sum(r * (points - mean) ** 2)))
    return w1 / sd if sd > 0 else math.nan


# --- verdicts ---------------------------------------------------------------


def states(scores: npt.ArrayLike, threshold: float, warning: float | None = None) -> npt.NDArray[np.int64]:
    """Per-feature :class:`State`: Drift at or above ``threshold``, Warning at or above ``warning``.

    NaN scores (no data) are Stable: absence of evidence is not drift.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    out = np.full(s.shape, int(State.STABLE), dtype=np.int64)
    if warning is not None:
        out[s >= warning] = int(State.WARNING)
    out[s >= threshold] = int(State.DRIFT)
    return out


def chi_square_states(
    result: ChiSquare, threshold: float, warning: float | None = None, alpha: float = 0.05
) -> npt.NDArray[np.int64]:
    """Chi-square verdicts: effect size as the score, and significant after correction."""
    by_effect = states(result.effect_size, threshold, warning)
    significant = result.p_adjusted < alpha
    return np.where(significant, by_effect, int(State.STABLE)).astype(np.int64)


def overall_state(feature_states: npt.ArrayLike, min_drifted: int = 1) -> State:
    """Drift when at least ``min_drifted`` features drift; else Warning if any warns or drifts."""
    s = np.asarray(feature_states, dtype=np.int64).ravel()
    if int(np.count_nonzero(s == State.DRIFT)) >= min_drifted:
        return State.DRIFT
    if bool(np.any(s >= State.WARNING)):
        return State.WARNING
    return State.STABLE
