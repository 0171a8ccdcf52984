"""Reading the prediction log and the labels, and joining them by request id.

Runs where the store is reachable and pandas is installed: the quality Job
and the trainer (both the trainer image), never the operator or the server.

Predictions: only the hour partitions that can hold the window are listed
(``layout.hours_between``), only the columns asked for are read, and rows are
kept when ``start <= time < end``. Labels: every file of every source (the
Model's feedback labels plus the spec's files and prefixes), CSV or Parquet;
a label is text (``1.0`` reads as ``1``) until it meets its prediction's
type. A request id and row labelled twice keeps the last label read
(sources in order, files by name, rows in file order), so a correction is a
new file. The join is an inner join on (request id, row).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelship.api.groundtruth import LabelFormat, LabelSource
from modelship_runtime.artifacts import store
from modelship_runtime.groundtruth import layout


class GroundTruthError(Exception):
    """The log or the labels cannot be read as they are (a bad column, an unreadable file)."""


@dataclass
class Read:
    frame: pd.DataFrame
    files: int
    bytes: int


def _format(uri: str, declared: str | None) -> str:
    if declared:
        return declared
    path = uri.lower().split("?")[0]
    if path.endswith((".parquet", ".pq")):
        return "parquet"
    if path.endswith((".csv", ".csv.gz")):
        return "csv"
    return ""


def prediction_files(prefix: str, start: datetime, end: datetime) -> list[str]:
    out: list[str] = []
    base = prefix.rstrip("/") + "/" + layout.PREDICTIONS_DIR + "/"
    for part in layout.hours_between(start, end):
        out += [u for u in store.list_uri(base + part + "/") if u.endswith(".parquet")]
    return out


def read_predictions(prefix: str, start: datetime, end: datetime, columns: Sequence[str] | None = None,
                     revisions: Sequence[str] | None = None) -> Read:
    """Logged prediction rows made in [start, end) (optionally of some revisions only)."""
    files = prediction_files(prefix, start, end)
    lo = pa.scalar(start, type=pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(end, type=pa.timestamp("us", tz="UTC"))
    tables = []
    size = 0
    for uri in files:
        data = store.read_uri(uri)
        size += len(data)
        try:
            table = pq.read_table(io.BytesIO(data), columns=list(columns) if columns else None)
        except (pa.ArrowInvalid, OSError) as exc:
            raise GroundTruthError(f"{uri}: not a readable prediction segment: {exc}") from exc
        when = table.column(layout.TIME)
        keep = pa.compute.and_(pa.compute.greater_equal(when, lo), pa.compute.less(when, hi))
        if revisions:
            keep = pa.compute.and_(keep, pa.compute.is_in(table.column(layout.REVISION),
                                                          value_set=pa.array(list(revisions))))
        table = table.filter(keep)
        if table.num_rows:
            tables.append(table)
    if not tables:
        names = list(columns) if columns else [layout.REQUEST_ID, layout.ROW, layout.TIME, layout.REVISION]
        return Read(pd.DataFrame({c: [] for c in names}), len(files), size)
    table = pa.concat_tables(tables, promote_options="permissive")
    return Read(table.to_pandas(), len(files), size)


def _label_text(values: pd.Series) -> pd.Series:
    """Labels as text: integral floats without '.0', booleans as 0/1, strings stripped."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.int64).astype(str)
    if pd.api.types.is_float_dtype(values):
        v = values.to_numpy(dtype=np.float64)
        integral = np.isfinite(v) & (np.mod(v, 1) == 0)
        text = values.astype(str)
        text[integral] = v[integral].astype(np.int64).astype(str)
        return text.where(values.notna(), None)
    if pd.api.types.is_integer_dtype(values):
        return values.astype(str)
    out = values.astype(object).where(values.notna(), None)
    return out.map(lambda v: v if v is None else (v.decode() if isinstance(v, bytes) else str(v).strip()))


def _read_label_file(uri: str, source: LabelSource) -> pd.DataFrame:
    fmt = _format(uri, str(source.format) if source.format else None)
    if not fmt:
        return pd.DataFrame()  # not a label file (a README, say): skipped
    data = store.read_uri(uri)
    try:
        if fmt == "parquet":
            frame = pq.read_table(io.BytesIO(data)).to_pandas()
        else:
            # Ids and labels stay text: a request id such as "007" must not become 7.
            opts = pacsv.ConvertOptions(column_types={source.id_column: pa.string(),
                                                      source.label_column: pa.string()})
            frame = pacsv.read_csv(io.BytesIO(data), convert_options=opts).to_pandas()
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise GroundTruthError(f"{uri}: cannot read as {fmt}: {exc}") from exc
    for column in (source.id_column, source.label_column):
        if column not in frame.columns:
            raise GroundTruthError(f"{uri}: no column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
                                   "set idColumn/labelColumn")
    out = pd.DataFrame({
        layout.REQUEST_ID: frame[source.id_column].astype(str),
        layout.ROW: (pd.to_numeric(frame[source.row_column], errors="coerce").fillna(0).astype(np.int64)
                     if source.row_column in frame.columns else np.zeros(len(frame), dtype=np.int64)),
        layout.LABEL: _label_text(frame[source.label_column]),
    })
    return out[out[layout.LABEL].notna()]


def label_files(source: LabelSource) -> list[str]:
    if source.uri.endswith("/"):
        return store.list_uri(source.uri)
    return [source.uri]


def read_labels(sources: Sequence[LabelSource]) -> Read:
    """(request id, row, label) from every source; the last label read for an id and row wins."""
    frames = []
    files = 0
    for source in sources:
        try:
            uris = label_files(source)
        except store.ArtifactNotFound:
            continue
        for uri in uris:
            try:
                frame = _read_label_file(uri, source)
            except store.ArtifactNotFound:
                continue
            files += 1
            if len(frame):
                frames.append(frame)
    if not frames:
        return Read(pd.DataFrame({layout.REQUEST_ID: pd.Series([], dtype=object),
                                  layout.ROW: pd.Series([], dtype=np.int64),
                                  layout.LABEL: pd.Series([], dtype=object)}), files, 0)
    labels = pd.concat(frames, ignore_index=True)
    labels = labels.drop_duplicates([layout.REQUEST_ID, layout.ROW], keep="last")
    return Read(labels, files, 0)


def feedback_source(prefix: str) -> LabelSource:
    """The labels the feedback endpoint writes under a ground-truth prefix."""
    return LabelSource(uri=prefix.rstrip("/") + "/" + layout.FEEDBACK_DIR + "/", format=LabelFormat.PARQUET)


def join(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows that have a label, with the label as a ``label`` column (text)."""
    if not len(predictions) or not len(labels):
        return predictions.iloc[0:0].assign(**{layout.LABEL: pd.Series([], dtype=object)})
    right = labels[[layout.REQUEST_ID, layout.ROW, layout.LABEL]]
    left = predictions.astype({layout.ROW: np.int64})
    return left.merge(right, on=[layout.REQUEST_ID, layout.ROW], how="inner", validate="many_to_one")
