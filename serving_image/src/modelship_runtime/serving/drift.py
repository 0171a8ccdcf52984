"""Live counts of inputs and predictions on the training reference's bins.

What the drift monitor reads. Numeric features become one Prometheus histogram
series each (``modelship_feature_value{model,feature}``) whose ``le`` buckets
are exactly the reference edges (the project's binning convention, see
``modelship_runtime.artifacts.metadata``); categorical features become
counters per known category plus ``__other__``
(``modelship_feature_category_total{model,feature,category}``); NaN/null is
counted apart (``modelship_feature_missing_total``). The prediction is the
pseudo-feature ``__prediction__`` in the same families.

Counting is deferred until a few hundred rows have queued (or a scrape
arrives), then vectorised: one broadcast comparison of the
[rows, features] block against the padded edge matrix and one bincount, so its
cost hardly depends on the number of features and is shared by the requests of
a batch. A collector renders the numpy counters at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelship_runtime.artifacts.metadata import (
    OTHER_CATEGORY,
    PREDICTION,
    CategoricalReference,
    InputMode,
    Metadata,
    NumericReference,
)

Array = npt.NDArray[Any]
# Above this many comparisons per call, a per-column binary search is cheaper
# than one broadcast comparison (and needs no big temporary).
_BROADCAST_LIMIT = 1 << 13
# Batches wait until this many rows are queued (or a scrape comes), so the
# fixed numpy cost of counting is paid once per many small requests.
PENDING_ROWS = 256


def _le(value: float) -> str:
    return repr(float(value))


class _NumericBlock:
    def __init__(self, names: list[str], edges: list[list[float]]) -> None:
        self.names = names
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        width = max((len(e) for e in edges), default=0)
        self.padded = np.full((len(names), max(width, 1)), np.inf)
        for j, e in enumerate(edges):
            self.padded[j, : len(e)] = e
        self.padded_by_rank = np.ascontiguousarray(self.padded.T)  # [edge rank, feature]
        sizes = np.array([len(e) + 1 for e in edges], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.total_bins = int(sizes.sum())
        self.counts = np.zeros(self.total_bins, dtype=np.int64)
        self.sums = np.zeros(len(names), dtype=np.float64)
        self.missing = np.zeros(len(names), dtype=np.int64)

    def add(self, x: Array) -> None:
        """x: [rows, features] float64.

        A value's bin is the number of its feature's edges below it (``searchsorted``
        with ``side="left"``). Few rows: one broadcast comparison against the padded
        edge matrix. Many rows: one comparison of the whole block per edge rank
        (a dozen passes over contiguous memory), not a call per feature.
        """
        if x.size * self.padded.shape[1] <= _BROADCAST_LIMIT:
            index = (x[:, :, None] > self.padded[None, :, :]).sum(axis=2)
        else:
            index = np.zeros(x.shape, dtype=np.uint8 if len(self.padded_by_rank) < 255 else np.int64)
            above = np.empty(x.shape, dtype=np.bool_)
            for edge_row in self.padded_by_rank:
                np.greater(x, edge_row, out=above)
                index += above
        flat = (index + self.offsets).ravel()
        finite = np.isfinite(x)
        if finite.all():
            self.sums += x.sum(axis=0)
        else:
            nan = np.isnan(x)
            if nan.any():
                self.missing += nan.sum(axis=0)
                flat = flat[~nan.ravel()]
            self.sums += np.where(finite, x, 0.0).sum(axis=0)
        self.counts += np.bincount(flat, minlength=self.total_bins)


@dataclass
class _Categorical:
    name: str
    categories: list[str]
    index: dict[str, int]
    counts: Array
    missing: int = 0

    def add(self, values: Array) -> None:
        other = len(self.categories)
        flat = values.ravel()
        if flat.dtype.kind in "iub":
            # Class labels: count the few distinct values in numpy, map them once.
            uniques, counts = np.unique(flat, return_counts=True)
            for v, n in zip(uniques.tolist(), counts.tolist(), strict=True):
                self.counts[self.index.get(_label(v), other)] += n
            return
        index = self.index
        counts = self.counts
        for v in flat.tolist():
            if v is None or v == "" or (isinstance(v, float) and v != v):
                self.missing += 1  # the trainer's reference counts "" as a missing category too
                continue
            counts[index.get(v if isinstance(v, str) else _label(v), other)] += 1


def _label(v: Any) -> str:
    # Integer-valued labels arrive as floats or ints; the reference spells them "1".
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class DriftCounters(Collector):
    """Counts feature and prediction values per reference bin; a Prometheus collector."""

    def __init__(self, model: str, metadata: Metadata) -> None:
        self.model = model
        self.lock = threading.Lock()
        ref = metadata.reference
        self.tensor_input = metadata.tensor_input if metadata.input_mode == InputMode.TENSOR else None
        numeric: list[tuple[int, str, list[float]]] = []
        self.categorical: list[_Categorical] = []
        for j, feature in enumerate(metadata.features):
            r = ref.features.get(feature.name)
            if isinstance(r, NumericReference):
                numeric.append((j, feature.name, list(r.edges)))
            elif isinstance(r, CategoricalReference):
                self.categorical.append(_categorical(feature.name, r))
        self.numeric_columns = [j for j, _, _ in numeric]
        self.numeric = _NumericBlock([n for _, n, _ in numeric], [e for _, _, e in numeric])
        self.prediction_numeric: _NumericBlock | None = None
        self.prediction_categorical: _Categorical | None = None
        self.label_output = next((o.name for o in metadata.outputs if o.role == "label"), None)
        self.value_output = next((o.name for o in metadata.outputs if o.role == "value"), None)
        self.proba_output = next((o.name for o in metadata.outputs if o.role == "probabilities"), None)
        if isinstance(ref.prediction, NumericReference):
            self.prediction_numeric = _NumericBlock([PREDICTION], [list(ref.prediction.edges)])
        elif isinstance(ref.prediction, CategoricalReference):
            self.prediction_categorical = _categorical(PREDICTION, ref.prediction)
        self.rows = 0
        self._pending: list[tuple[dict[str, Array], dict[str, Array]]] = []
        self._pending_rows = 0

    @property
    def enabled(self) -> bool:
        return bool(
            self.numeric.names or self.categorical or self.prediction_numeric or self.prediction_categorical
        )

    def count(self, feed: dict[str, Array], outputs: dict[str, Array]) -> None:
        """Queues a batch; counting runs once enough rows wait (or at scrape time)."""
        rows = next(iter(feed.values())).shape[0] if feed else 0
        with self.lock:
            self._pending.append((feed, outputs))
            self._pending_rows += rows
            if self._pending_rows >= PENDING_ROWS:
                with np.errstate(all="ignore"):
                    self._flush()

    def _flush(self) -> None:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return
        if len(pending) == 1:
            feed, outputs = pending[0]
        else:
            feed = {k: np.concatenate([p[0][k] for p in pending]) for k in pending[0][0]}
            outputs = {k: np.concatenate([p[1][k] for p in pending]) for k in pending[0][1]}
        self._count_inputs(feed)
        self._count_prediction(outputs)

    def _count_inputs(self, feed: dict[str, Array]) -> None:
        rows = 0
        if self.numeric.names:
            if self.tensor_input is not None:
                x = feed[self.tensor_input]
                block = x if x.shape[1] == len(self.numeric_columns) else x[:, self.numeric_columns]
            else:
                block = np.concatenate(
                    [feed[n].reshape(-1, 1) for n in self.numeric.names], axis=1
                )
            block = np.asarray(block, dtype=np.float64)
            rows = block.shape[0]
            self.numeric.add(block)
        for c in self.categorical:
            values = feed[c.name]
            rows = values.shape[0]
            c.add(values)
        self.rows += rows

    def _count_prediction(self, outputs: dict[str, Array]) -> None:
        if self.prediction_categorical is not None and self.label_output in outputs:
            self.prediction_categorical.add(outputs[self.label_output])
        elif self.prediction_numeric is not None:
            if self.value_output in outputs:
                values = outputs[self.value_output]
            elif self.proba_output in outputs:
                values = outputs[self.proba_output][:, -1]
            else:
                return
            self.prediction_numeric.add(np.asarray(values, dtype=np.float64).reshape(-1, 1))

    def collect(self) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "modelship_feature_value",
            "Live values per feature on the training reference's bin edges "
            "(feature=__prediction__: the model's output).",
            labels=["model", "feature"],
        )
        cats = CounterMetricFamily(
            "modelship_feature_category",
            "Live values per category of a categorical feature (__other__: unseen values).",
            labels=["model", "feature", "category"],
        )
        missing = CounterMetricFamily(
            "modelship_feature_missing", "Null/NaN values per feature (not binned).", labels=["model", "feature"]
        )
        rows = CounterMetricFamily("modelship_drift_rows", "Rows counted into the drift histograms.", labels=["model"])
        with self.lock, np.errstate(all="ignore"):
            self._flush()
            for block in (self.numeric, self.prediction_numeric):
                if block is None:
                    continue
                for j, name in enumerate(block.names):
                    start = int(block.offsets[j])
                    edges = block.edges[j]
                    cumulative = np.cumsum(block.counts[start : start + len(edges) + 1])
                    buckets = [(_le(e), float(c)) for e, c in zip(edges, cumulative[:-1], strict=True)]
                    buckets.append(("+Inf", float(cumulative[-1])))
                    hist.add_metric([self.model, name], buckets, float(block.sums[j]))
                    missing.add_metric([self.model, name], float(block.missing[j]))
            for c in [*self.categorical, self.prediction_categorical]:
                if c is None:
                    continue
                for i, category in enumerate([*c.categories, OTHER_CATEGORY]):
                    cats.add_metric([self.model, c.name, category], float(c.counts[i]))
                missing.add_metric([self.model, c.name], float(c.missing))
            rows.add_metric([self.model], float(self.rows))
        yield hist
        yield cats
        yield missing
        yield rows


def _categorical(name: str, ref: CategoricalReference) -> _Categorical:
    cats = [str(c) for c in ref.categories]
    return _Categorical(name, cats, {c: i for i, c in enumerate(cats)}, np.zeros(len(cats) + 1, dtype=np.int64))
