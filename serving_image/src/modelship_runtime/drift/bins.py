"""The one binning convention (see ``modelship_runtime.artifacts.metadata``).

Pure numpy: the server counts live values with it, the trainer builds the
reference with it, and the drift statistics read both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def numeric_bin_counts(values: npt.ArrayLike, edges: Sequence[float]) -> npt.NDArray[np.int64]:
    """Counts per bin: bin 0 is x <= e_0, bin i is e_{i-1} < x <= e_i, the last x > e_{k-1}.

    NaN is dropped (counted apart as missing); +-inf fall in the outer bins.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def categorical_bin_counts(values: Sequence[object], categories: Sequence[str]) -> npt.NDArray[np.int64]:
    """Counts per known category, plus a last bin for anything else (``__other__``).

    None, NaN and the empty string are missing values and are not counted.
    """
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    other = len(categories)
    for v in values:
        if v is None or v == "" or (isinstance(v, float) and np.isnan(v)):
            continue  # missing: None, NaN or the empty string (the trainer's missing category)
        counts[index.get(str(v), other)] += 1
    return counts
