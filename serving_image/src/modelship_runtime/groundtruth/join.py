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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelship.api.groundtruth import LabelFormat, LabelSource
from modelship_runtime.artifacts import store
from modelship_runtime.groundtruth import layout

EMPTY_PREDICTIONS = pa.table({layout.REQUEST_ID: pa.array([], pa.string()), layout.ROW: pa.array([], pa.int64()),
                               layout.TIME: pa.array([], pa.timestamp("us", tz="UTC")),
                               layout.REVISION: pa.array([], pa.string())})
_EMPTY_LABELS = pa.table({layout.REQUEST_ID: pa.array([], pa.string()), layout.ROW: pa.array([], pa.int64()),
                          layout.LABEL: pa.array([], pa.string())})


class GroundTruthError(Exception):
    """The log or the labels cannot be read as they are (a bad column, an unreadable file)."""


@dataclass
class Read:
    table: pa.Table
    files: int
    bytes: int

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.to_pandas()

    def __len__(self) -> int:
        return int(self.table.num_rows)


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


def iter_predictions(prefix: str, start: datetime, end: datetime, columns: Sequence[str] | None = None,
                     revisions: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> Iterator[tuple[pa.Table, int]]:
    """(rows made in [start, end) of one segment, the segment's size in bytes), segment by segment.

    ``exclude``: columns not to read at all (the features, when only quality is measured).
    """
    lo = pa.scalar(start, type=pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(end, type=pa.timestamp("us", tz="UTC"))
    for uri in prediction_files(prefix, start, end):
        data = store.read_uri(uri)
        try:
            wanted = list(columns) if columns else None
            if exclude and wanted is None:
                skip = set(exclude)
                wanted = [n for n in pq.ParquetFile(io.BytesIO(data)).schema_arrow.names if n not in skip]
            table = pq.read_table(io.BytesIO(data), columns=wanted)
        except (pa.ArrowInvalid, OSError) as exc:
            raise GroundTruthError(f"{uri}: not a readable prediction segment: {exc}") from exc
        when = table.column(layout.TIME)
        keep = pc.and_(pc.greater_equal(when, lo), pc.less(when, hi))
        if revisions:
            keep = pc.and_(keep, pc.is_in(table.column(layout.REVISION), value_set=pa.array(list(revisions))))
        yield table.filter(keep), len(data)


def read_predictions(prefix: str, start: datetime, end: datetime, columns: Sequence[str] | None = None,
                     revisions: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> Read:
    """All logged prediction rows made in [start, end) as one table (the production dataset needs them)."""
    tables = []
    size = files = 0
    for table, n in iter_predictions(prefix, start, end, columns, revisions, exclude):
        size += n
        files += 1
        if table.num_rows:
            tables.append(table)
    if not tables:
        return Read(EMPTY_PREDICTIONS, files, size)
    return Read(pa.concat_tables(tables, promote_options="permissive"), files, size)


def _arrow_label_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Labels as text without pandas: integral floats without '.0', booleans as 0/1."""
    t = column.type
    if pa.types.is_boolean(t):
        return pc.cast(pc.cast(column, pa.int8()), pa.string())
    if pa.types.is_floating(t):
        values = column.to_numpy(zero_copy_only=False)
        integral = np.isfinite(values) & (np.mod(np.nan_to_num(values), 1) == 0)
        text = np.where(integral, np.nan_to_num(values).astype(np.int64).astype(str), values.astype(str))
        return pa.chunked_array([pa.array(text, pa.string(), mask=~np.isfinite(values))])
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pc.cast(column, pa.string())


def _read_label_file(uri: str, source: LabelSource) -> pa.Table | None:
    fmt = _format(uri, str(source.format) if source.format else None)
    if not fmt:
        return None  # not a label file (a README, say): skipped
    data = store.read_uri(uri)
    try:
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
        else:
            # Ids and labels stay text: a request id such as "007" must not become 7.
            opts = pacsv.ConvertOptions(column_types={source.id_column: pa.string(),
                                                      source.label_column: pa.string()})
            table = pacsv.read_csv(io.BytesIO(data), convert_options=opts)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise GroundTruthError(f"{uri}: cannot read as {fmt}: {exc}") from exc
    for column in (source.id_column, source.label_column):
        if column not in table.column_names:
            raise GroundTruthError(f"{uri}: no column {column!r} (columns: {', '.join(table.column_names)}); "
                                   "set idColumn/labelColumn")
    try:
        labels = _arrow_label_text(table.column(source.label_column))
        rows = (pc.cast(table.column(source.row_column), pa.int64()).fill_null(0)
                if source.row_column in table.column_names else pa.array(np.zeros(table.num_rows, np.int64)))
        out = pa.table({layout.REQUEST_ID: pc.cast(table.column(source.id_column), pa.string()),
                        layout.ROW: rows, layout.LABEL: labels})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise GroundTruthError(f"{uri}: {exc}") from exc
    return out.filter(pc.is_valid(out.column(layout.LABEL)))


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
                table = _read_label_file(uri, source)
            except store.ArtifactNotFound:
                continue
            if table is None:
                continue
            files += 1
            if table.num_rows:
                frames.append(table)
    if not frames:
        return Read(_EMPTY_LABELS, files, 0)
    labels = pa.concat_tables(frames)
    # The last label read for an id and row wins: keep the highest position per key.
    labels = labels.append_column("_pos", pa.array(np.arange(labels.num_rows, dtype=np.int64)))
    last = labels.group_by([layout.REQUEST_ID, layout.ROW], use_threads=False).aggregate([("_pos", "max")])
    kept = np.sort(last.column("_pos_max").to_numpy())
    return Read(labels.take(pa.array(kept)).drop_columns(["_pos"]), files, 0)


def feedback_source(prefix: str) -> LabelSource:
    """The labels the feedback endpoint writes under a ground-truth prefix."""
    return LabelSource(uri=prefix.rstrip("/") + "/" + layout.FEEDBACK_DIR + "/", format=LabelFormat.PARQUET)


def join(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    """Prediction rows that have a label, with the label as a ``label`` column (text), in log order."""
    left = predictions.append_column("_order", pa.array(np.arange(predictions.num_rows, dtype=np.int64)))
    right = labels.select([layout.REQUEST_ID, layout.ROW, layout.LABEL])
    joined = left.join(right, keys=[layout.REQUEST_ID, layout.ROW], join_type="inner", use_threads=False)
    return joined.sort_by("_order").drop_columns(["_order"])
