"""Confidence-based performance estimation (CBPE) for binary classifiers, and its calibration.

Before labels arrive, a calibrated probability says how likely each served
prediction is to be right: the expected accuracy is the mean of
``p`` where the model said positive and ``1 - p`` where it said negative,
and the expected ROC AUC follows from expected true and false positive
counts at every score threshold (NannyML's CBPE). It holds while P(y | x)
stays what it was in training (covariate shift); a changed concept is
exactly what it cannot see, and what the realised metric (once labels
arrive) shows: the two side by side tell the kinds of shift apart.

The estimate is only as good as the calibration. The trainer checks it on
its holdout (``check``): reliability per decile, expected calibration error
(ECE) of the raw scores, and of an isotonic map judged by two-fold
cross-fitting; the map is used only when it does better. The result goes
into metadata.json as ``calibration`` and the quality Job applies it
(``apply``) with ``numpy.interp``: no scikit-learn is needed to estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelship_runtime.artifacts.metadata import Calibration

Floats = npt.NDArray[np.float64]
BINS = 10
MIN_GAIN = 0.01


def expected_calibration_error(p: Floats, y: npt.NDArray[np.bool_], bins: int = BINS) -> float:
    """ECE over equal-count bins of ``p``: sum of |mean p - share of positives| weighted by bin size."""
    if p.size == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, p.size)):
        if chunk.size:
            total += chunk.size * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / p.size


def reliability(p: Floats, y: npt.NDArray[np.bool_], bins: int = BINS) -> list[list[float]]:
    """[mean p, share of positives, rows] per equal-count bin."""
    order = np.argsort(p, kind="stable")
    return [[round(float(p[c].mean()), 6), round(float(y[c].mean()), 6), float(c.size)]
            for c in np.array_split(order, min(bins, max(p.size, 1))) if c.size]


def _isotonic(p: Floats, y: npt.NDArray[np.bool_]) -> tuple[list[float], list[float]]:
    """Breakpoints (x, y) of an isotonic fit of y on p (pool-adjacent-violators), for np.interp."""
    order = np.argsort(p, kind="stable")
    xs = p[order]
    ys = y[order].astype(np.float64)
    # Merge equal scores first, then pool adjacent violators.
    values: list[float] = []
    weights: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    uniq, start = np.unique(xs, return_index=True)
    ends = np.r_[start[1:], xs.size]
    for x, a, b in zip(uniq.tolist(), start.tolist(), ends.tolist(), strict=True):
        values.append(float(ys[a:b].mean()))
        weights.append(float(b - a))
        lows.append(x)
        highs.append(x)
        while len(values) > 1 and values[-2] >= values[-1]:  # equal neighbours merge too: fewer breakpoints
            w = weights[-2] + weights[-1]
            v = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            values[-2:] = [v]
            weights[-2:] = [w]
            lows[-2:] = [lows[-2]]
            highs[-2:] = [highs[-1]]
    bx: list[float] = []
    by: list[float] = []
    for lo, hi, v in zip(lows, highs, values, strict=True):
        bx.append(lo)
        by.append(v)
        if hi != lo:
            bx.append(hi)
            by.append(v)
    return bx, by


def _interp(p: Floats, xs: list[float], ys: list[float]) -> Floats:
    out: Floats = np.clip(np.interp(p, np.asarray(xs), np.asarray(ys)), 0.0, 1.0)
    return out


def check(p: Floats, y: npt.NDArray[np.bool_], seed: int = 0) -> Calibration:
    """Calibration of positive-class probabilities ``p`` against outcomes ``y`` (the training holdout)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    raw = expected_calibration_error(p, y)
    # Cross-fitted ECE of the isotonic map: fit on one half, measure on the other, both ways.
    rng = np.random.default_rng(seed)
    fold = rng.permutation(p.size) % 2 == 0
    mapped = np.empty_like(p)
    for part in (fold, ~fold):
        other = ~part
        if part.sum() < 2 or other.sum() < 2:
            mapped[part] = p[part]
            continue
        xs, ys = _isotonic(p[other], y[other])
        mapped[part] = _interp(p[part], xs, ys)
    crossed = expected_calibration_error(mapped, y)
    # ECE itself is noisy by about 0.01 on a few thousand rows: a map must win by more than that.
    use = bool(raw - crossed > MIN_GAIN)
    xs, ys = _isotonic(p, y) if use else ([], [])
    return Calibration(
        method="isotonic" if use else "none", rows=int(p.size), ece=round(raw, 6),
        ece_calibrated=round(crossed, 6), brier=round(float(np.mean((p - y) ** 2)), 6),
        reliability=reliability(p, y), x=[round(v, 9) for v in xs], y=[round(v, 9) for v in ys],
    )


def apply(p: Floats, calibration: Calibration | None) -> Floats:
    """Calibrated probabilities (the raw ones when there is no map)."""
    p = np.asarray(p, dtype=np.float64)
    if calibration is None or calibration.method != "isotonic" or not calibration.x:
        return np.clip(p, 0.0, 1.0)
    return _interp(p, calibration.x, calibration.y)


def expected_accuracy(p: Floats, predicted_positive: npt.NDArray[np.bool_]) -> float:
    """Mean probability that each prediction is right (``p`` calibrated, of the positive class)."""
    if p.size == 0:
        return float("nan")
    return float(np.where(predicted_positive, p, 1.0 - p).mean())


def expected_roc_auc(score: Floats, p: Floats) -> float:
    """Expected ROC AUC of ranking by ``score`` when row i is positive with probability ``p[i]``.

    Expected true/false positives above each distinct score give an expected
    ROC curve; the area under it (trapezoids, ties as one step) is the estimate.
    """
    if score.size == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s = score[order]
    tp = np.cumsum(p[order])
    fp = np.cumsum(1.0 - p[order])
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # the last row of each run of equal scores
    tpr = np.r_[0.0, tp[last]]
    fpr = np.r_[0.0, fp[last]]
    if tpr[-1] <= 0 or fpr[-1] <= 0:
        return float("nan")
    tpr /= tpr[-1]
    fpr /= fpr[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def estimate(score: Floats, predicted_positive: npt.NDArray[np.bool_],
             calibration: Calibration | None) -> dict[str, float]:
    """Expected accuracy and ROC AUC of a binary classifier from its served positive-class scores."""
    p = apply(score, calibration)
    out: dict[str, Any] = {"accuracy": expected_accuracy(p, predicted_positive),
                           "roc_auc": expected_roc_auc(np.asarray(score, dtype=np.float64), p)}
    return {k: round(float(v), 6) for k, v in out.items() if np.isfinite(v)}
