"""Counts over a window from cumulative snapshots of many pods' histograms.

A serving pod exposes cumulative counts since it started (Prometheus
histograms and counters). The drift monitor scrapes every pod each interval
and keeps the snapshots; the counts observed during a window are the
differences between the newest snapshot and one taken a window earlier.

Rules, as Prometheus' ``increase()`` applies them per series:

* a pod present in both snapshots contributes ``new - old``;
* a pod whose counts went down restarted (counter reset): it contributes its
  new counts in full, as if it had started from zero;
* a pod only in the new snapshot is new: it contributes its counts in full
  (a pod started during the window counted only during the window, apart
  from what it counted before the old snapshot's time, which is none when it
  started after it);
* a pod only in the old snapshot is gone: what it counted after the old
  snapshot is lost, the window is undercounted, never overcounted.

A snapshot is a mapping from a series identity (pod name, or pod uid, plus
anything else that tells series apart) to a 1-D array of per-bin counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

Counts = npt.NDArray[np.float64]
Snapshot = Mapping[str, npt.ArrayLike]


def bins_from_cumulative(le_counts: npt.ArrayLike) -> Counts:
    """Per-bin counts from cumulative ``le`` bucket counts (the last is ``+Inf``)."""
    c = np.asarray(le_counts, dtype=np.float64).ravel()
    out: Counts = np.diff(c, prepend=0.0)
    return out


@dataclass(frozen=True)
class WindowCounts:
    """Counts over the window, summed over pods, and how they were obtained."""

    counts: Counts
    resets: tuple[str, ...]  # series that restarted during the window
    new: tuple[str, ...]  # series that appeared during the window
    gone: tuple[str, ...]  # series that disappeared (their last counts are lost)

    @property
    def total(self) -> float:
        return float(self.counts.sum())


def window_counts(old: Snapshot | None, new: Snapshot, bins: int | None = None) -> WindowCounts:
    """Counts accumulated between two snapshots (see the module docstring for the rules).

    ``old=None`` (no earlier snapshot, e.g. just after the operator started)
    counts everything since each pod started. ``bins`` gives the length when
    ``new`` is empty.
    """
    previous = {} if old is None else {k: np.asarray(v, dtype=np.float64).ravel() for k, v in old.items()}
    current = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in new.items()}
    width = bins if bins is not None else next((v.size for v in current.values()), 0)
    total = np.zeros(width, dtype=np.float64)
    resets: list[str] = []
    fresh: list[str] = []
    for key in sorted(current):
        now = current[key]
        if now.size != width:
            raise ValueError(f"series {key!r} has {now.size} bins, expected {width}")
        before = previous.get(key)
        if before is None:
            fresh.append(key)
            total += now
        elif before.size != now.size or bool(np.any(now < before)):
            resets.append(key)
            total += now
        else:
            total += now - before
    gone = tuple(sorted(set(previous) - set(current)))
    return WindowCounts(total, tuple(resets), tuple(fresh), gone)


def pick_baseline(
    snapshots: Sequence[tuple[datetime, Snapshot]], now: datetime, window: timedelta
) -> tuple[datetime, Snapshot] | None:
    """The newest snapshot taken at least ``window`` before ``now``.

    When none is that old, the oldest one (a shorter window while the monitor
    warms up); ``None`` when there are none. ``snapshots`` may be in any order.
    """
    if not snapshots:
        return None
    ordered = sorted(snapshots, key=lambda s: s[0])
    old_enough = [s for s in ordered if s[0] <= now - window]
    return old_enough[-1] if old_enough else ordered[0]


def prune(
    snapshots: Sequence[tuple[datetime, Snapshot]], now: datetime, window: timedelta
) -> list[tuple[datetime, Snapshot]]:
    """Drop snapshots no longer needed: keep the baseline for ``window`` and all newer ones."""
    base = pick_baseline(snapshots, now, window)
    if base is None:
        return []
    return sorted((s for s in snapshots if s[0] >= base[0]), key=lambda s: s[0])


def window_counts_by_feature(
    old: Mapping[str, Mapping[str, npt.ArrayLike]] | None,
    new: Mapping[str, Mapping[str, npt.ArrayLike]],
) -> dict[str, WindowCounts]:
    """:func:`window_counts` for every feature at once.

    Snapshots here map pod → feature → per-bin counts (what
    ``modelship.logic.scrape.drift_counts`` returns for one pod). A feature
    is in the result when any pod in ``new`` reports it.
    """
    features = sorted({f for per_pod in new.values() for f in per_pod})
    out: dict[str, WindowCounts] = {}
    for feature in features:
        now = {pod: per_pod[feature] for pod, per_pod in new.items() if feature in per_pod}
        before = None if old is None else {pod: per_pod[feature] for pod, per_pod in old.items() if feature in per_pod}
        sizes = {np.asarray(v).size for v in now.values()}
        if len(sizes) != 1:
            # Pods disagree on the bins (two model versions): keep the most common size
            # (the larger on a tie, so the answer does not depend on set order).
            size = max(sizes, key=lambda n: (sum(np.asarray(v).size == n for v in now.values()), n))
            now = {p: v for p, v in now.items() if np.asarray(v).size == size}
        out[feature] = window_counts(before, now)
    return out
