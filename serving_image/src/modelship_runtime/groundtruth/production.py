"""A training dataset from production: the labelled logged predictions of a window.

The trainer calls :func:`load` instead of reading ``dataset.uri`` when the
spec has ``dataset.production``. The rows are the window's logged inputs
(one column per feature, as served) with the joined label as the target
column, optionally after the rows at ``dataset.uri``. They are written next
to the artifact as ``dataset.parquet`` and that file's sha256 is the
dataset digest, so the run records exactly what it learned from and can be
repeated from the store alone.

The file is written once, like the rest of the artifact: the first process
of a run to join writes it, and every other one (a fanned-out search's
shares and its refit, a retried pod) trains on that file, not on a fresh
join that labels arriving meanwhile would change.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelship.api.trainingjob import Dataset
from modelship_runtime.artifacts import store
from modelship_runtime.groundtruth import join, layout
from modelship_runtime.training import data
from modelship_runtime.training.errors import DataError, StoreError

DATASET_FILE = "dataset.parquet"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _typed_target(labels: pd.Series) -> pd.Series:
    """Labels as numbers when they all are (integers stay integers), else as text."""
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().all():
        v = numbers.to_numpy(dtype=np.float64)
        if np.all(np.mod(v, 1) == 0):
            return pd.Series(v.astype(np.int64), index=labels.index)
        return pd.Series(v, index=labels.index)
    return labels.astype(str)


def production_frame(dataset: Dataset) -> tuple[pd.DataFrame, int]:
    """(features + target of the labelled production rows, logged rows in the window)."""
    prod = dataset.production
    assert prod is not None
    try:
        predictions = join.read_predictions(prod.uri, _time(prod.start), _time(prod.end), revisions=prod.revisions)
        labels = join.read_labels([join.feedback_source(prod.uri), *prod.labels])
    except store.ArtifactError as exc:
        raise StoreError(f"cannot read the ground truth under {prod.uri}: {exc}") from exc
    except join.GroundTruthError as exc:
        raise DataError(str(exc)) from exc
    joined = join.join(predictions.table, labels.table).to_pandas()
    features = dataset.features or [
        c for c in predictions.table.column_names
        if c not in layout.RESERVED and not c.startswith(layout.PROBA_PREFIX)
    ]
    missing = [f for f in features if f not in joined.columns]
    if missing and len(joined):
        raise DataError(f"the prediction log has no column(s) {', '.join(missing)}; the logged features are "
                        f"{', '.join(c for c in joined.columns if c not in layout.RESERVED)}")
    if len(joined) < prod.min_rows:
        raise DataError(
            f"{len(joined)} labelled production rows between {prod.start} and {prod.end} "
            f"({len(predictions)} logged, {len(labels)} labels); minRows is {prod.min_rows}: "
            "wait for more labels or widen the window")
    frame = joined[features].copy()
    frame[dataset.target] = _typed_target(joined[layout.LABEL])
    return frame.reset_index(drop=True), len(predictions)


def _written(uri: str) -> data.LoadedData | None:
    """The production dataset an earlier process of this run wrote, if there is one."""
    try:
        raw = store.read_uri(uri)
    except store.ArtifactNotFound:
        return None
    except store.ArtifactError as exc:
        raise StoreError(f"cannot read the production dataset {uri}: {exc}") from exc
    frame = pq.read_table(io.BytesIO(raw)).to_pandas()
    return data.LoadedData(frame=frame, sha256=store.sha256_hex(raw), rows=len(frame), uri=uri)


def load(dataset: Dataset, output_uri: str, log: Callable[[str], None]) -> data.LoadedData:
    """The production dataset, written once to ``<output_uri>/dataset.parquet``; its digest is that file's."""
    prod = dataset.production
    assert prod is not None
    uri = store.join(output_uri, DATASET_FILE)
    earlier = _written(uri)
    if earlier is not None:
        log(f"Read the {earlier.rows} production rows this run joined before ({uri})")
        return earlier
    frame, logged = production_frame(dataset)
    log(f"Joined {len(frame)} labelled production rows of {logged} logged between {prod.start} and {prod.end}")
    if prod.include_training_data:
        original = data.load(dataset.model_copy(update={"production": None})).frame
        missing = [c for c in frame.columns if c not in original.columns]
        if missing:
            raise DataError(f"{dataset.uri} lacks column(s) {', '.join(missing)} that the production rows have")
        frame = pd.concat([original[list(frame.columns)], frame], ignore_index=True)
        log(f"Appended them to the {len(original)} rows of {dataset.uri}")
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    raw = sink.getvalue()
    try:
        created = store.create_uri(uri, raw)
    except store.ArtifactError as exc:
        raise StoreError(f"cannot write the production dataset: {exc}") from exc
    if not created:  # another process of this run wrote it first: train on that one
        theirs = _written(uri)
        if theirs is None:
            raise StoreError(f"cannot read the production dataset {uri} another process wrote")
        log(f"Another process of this run wrote {uri} first; training on its {theirs.rows} rows")
        return theirs
    return data.LoadedData(frame=frame, sha256=store.sha256_hex(raw), rows=len(frame), uri=uri)
