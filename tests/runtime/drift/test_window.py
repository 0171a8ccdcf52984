"""Window counts from cumulative pod snapshots: resets, new and gone pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelship_runtime.drift.window import (
    bins_from_cumulative,
    pick_baseline,
    prune,
    window_counts,
    window_counts_by_feature,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_bins_from_cumulative() -> None:
    assert bins_from_cumulative([2, 5, 5, 9]).tolist() == [2, 3, 0, 4]


@pytest.mark.parametrize(
    ("old", "new", "counts", "resets", "fresh", "gone"),
    [
        ({"a": [1, 2]}, {"a": [3, 5]}, [2, 3], (), (), ()),
        # b restarted: its counts went down, so they count in full
        ({"a": [1, 2], "b": [10, 10]}, {"a": [1, 2], "b": [1, 4]}, [1, 4], ("b",), (), ()),
        # c is new, a is gone
        ({"a": [1, 2]}, {"c": [4, 0]}, [4, 0], (), ("c",), ("a",)),
        (None, {"a": [1, 1], "b": [2, 2]}, [3, 3], (), ("a", "b"), ()),
        ({"a": [5, 5]}, {}, [], (), (), ("a",)),
    ],
)
def test_window_counts(
    old: dict[str, list[float]] | None,
    new: dict[str, list[float]],
    counts: list[float],
    resets: tuple[str, ...],
    fresh: tuple[str, ...],
    gone: tuple[str, ...],
) -> None:
    w = window_counts(old, new)
    assert w.counts.tolist() == counts
    assert (w.resets, w.new, w.gone) == (resets, fresh, gone)
    assert w.total == sum(counts)


def test_window_counts_empty_with_known_width_and_bad_width() -> None:
    assert window_counts(None, {}, bins=3).counts.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="bins"):
        window_counts(None, {"a": [1, 2], "b": [1]})


def test_window_counts_reset_when_bin_count_changes() -> None:
    w = window_counts({"a": np.array([1.0, 2.0, 3.0])}, {"a": [4.0, 4.0]})
    assert w.resets == ("a",) and w.counts.tolist() == [4, 4]


def test_pick_baseline_and_prune() -> None:
    snaps = [(T0 + timedelta(minutes=m), {"a": [m, m]}) for m in (0, 5, 10, 15)]
    now = T0 + timedelta(minutes=16)
    base = pick_baseline(snaps, now, timedelta(minutes=10))
    assert base is not None and base[0] == T0 + timedelta(minutes=5)
    warm = pick_baseline(snaps, now, timedelta(hours=1))
    assert warm is not None and warm[0] == T0
    assert pick_baseline([], now, timedelta(minutes=1)) is None
    kept = prune(list(reversed(snaps)), now, timedelta(minutes=10))
    assert [t for t, _ in kept] == [T0 + timedelta(minutes=m) for m in (5, 10, 15)]
    assert prune([], now, timedelta(minutes=1)) == []


def test_window_counts_by_feature() -> None:
    old = {"a": {"x": [1, 1], "y": [5, 5, 5]}, "b": {"x": [9, 9]}}
    new = {"a": {"x": [2, 3], "y": [6, 5, 5]}, "b": {"x": [1, 0]}, "c": {"x": [1, 2, 3]}}
    w = window_counts_by_feature(old, new)
    assert w["x"].counts.tolist() == [1 + 1, 2 + 0]  # a: +1,+2; b restarted: 1,0; c (other bins) dropped
    assert w["x"].resets == ("b",)
    assert w["y"].counts.tolist() == [1, 0, 0]
    assert window_counts_by_feature(None, new)["y"].counts.tolist() == [6, 5, 5]
