"""The prediction log and the feedback labels: Parquet segments in the store, off the request path.

On the request path a logged prediction costs one closure and one append
(the arrays are referenced, not copied); every 512 rows the event loop turns
the queued requests into columns and encodes one Parquet page per column
(``groundtruth.parquet``, no pyarrow), about a millisecond. A writer thread
wakes every ``flush_seconds`` (or when ``segment_rows`` rows wait), strings
the pages into a segment and writes it under the Model's ground-truth prefix
with a write-once name (``groundtruth.layout``). Encoding on the loop rather
than in the thread is measured cheaper: a second thread doing Python work
fights the loop for the GIL on every socket call. The queue is bounded by rows: when it is full a
prediction is answered as usual and not logged, and
``modelship_prediction_log_rows_total{outcome="dropped"}`` counts it. A
segment that cannot be written is retried at the next flush (at most
``MAX_RETRY_SEGMENTS`` kept), then dropped and counted. SIGTERM flushes
what is queued before the process exits.

Settings come from ``MODELSHIP_PREDICTION_LOG_*`` variables (the operator
sets them from ``Model.spec.serving.predictionLog``); with no URI the log is
off and nothing here runs.
"""

from __future__ import annotations

import itertools
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelship_runtime.artifacts import store
from modelship_runtime.artifacts.metadata import InputMode, Metadata
from modelship_runtime.groundtruth import layout
from modelship_runtime.groundtruth.parquet import Codec, Column, Page, encode_page, write_pages

from .batcher import Feed, Reply

log = logging.getLogger("modelship.serve")
MAX_RETRY_SEGMENTS = 4
PAGE_ROWS = 512  # rows encoded at once on the event loop: about a millisecond


class PredictionLogSettings(BaseSettings):
    """``MODELSHIP_PREDICTION_LOG_*``; the revision and feedback token have their own names."""

    model_config = SettingsConfigDict(env_prefix="MODELSHIP_PREDICTION_LOG_", extra="ignore",
                                      populate_by_name=True)

    uri: str | None = Field(default=None, description="Ground-truth prefix (file:// or s3://); unset: off.")
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of requests logged.")
    flush_seconds: float = Field(default=30.0, gt=0.0, description="Longest time a row waits to be written.")
    segment_rows: int = Field(default=50_000, ge=1, description="Rows that trigger an early segment.")
    max_queue_rows: int = Field(default=200_000, ge=1, description="Rows queued at most; more are dropped.")
    codec: Codec = Field(
        default="none",
        description="Parquet page compression: none or gzip. gzip costs about 5x the CPU of encoding for "
        "a quarter less bytes on numeric features (benches/serving/test_predlog_bench.py).",
    )
    revision: str = Field(default="", validation_alias="MODELSHIP_REVISION",
                          description="The serving revision (the Deployment's name).")
    feedback_token: str | None = Field(default=None, validation_alias="MODELSHIP_FEEDBACK_TOKEN",
                                       description="Bearer token POST .../feedback requires, when set.")


class _Counts:
    def __init__(self) -> None:
        self.logged = 0
        self.dropped = 0
        self.sampled_out = 0
        self.segments = 0
        self.failed_segments = 0
        self.bytes = 0
        self.labels = 0
        self.labels_dropped = 0


class Segments:
    """Rows queued, encoded a page at a time, and written as segments by a thread (predictions or labels).

    ``offer`` runs on the event loop: it queues an item and, once ``page_rows``
    rows wait, turns them into columns and encodes one Parquet page per column
    there and then (about a millisecond for 512 rows, in the same thread as the
    requests, so nothing waits for the GIL). The writer thread only strings
    pages together (``write_pages``) and writes the bytes, which releases the GIL.
    """

    def __init__(self, prefix: str, directory: str, stem: str, settings: PredictionLogSettings,
                 build: Callable[[list[Any]], tuple[list[Column], datetime]], counts: _Counts,
                 what: str, page_rows: int) -> None:
        self.prefix = prefix
        self.directory = directory
        self.stem = stem
        self.settings = settings
        self.build = build
        self.counts = counts
        self.what = what
        self.page_rows = page_rows
        self.pending: list[Any] = []
        self.pending_rows = 0
        self.pages: deque[tuple[int, datetime, list[Page]]] = deque()
        self.queued_rows = 0  # pending + encoded, not yet written
        self.seq = 0
        self.retry: deque[tuple[str, bytes, int]] = deque()
        self._guard = threading.Lock()  # pending, pages, queued_rows
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one flush at a time (the thread's, or the final one)
        self._thread = threading.Thread(target=self._run, name=f"modelship-{what}-log", daemon=True)
        self._thread.start()

    def offer(self, item: Any, rows: int) -> bool:
        """Queue an item of ``rows`` rows; False (and counted by the caller) when full."""
        with self._guard:
            if self.queued_rows + rows > self.settings.max_queue_rows:
                return False
            self.pending.append(item)
            self.pending_rows += rows
            self.queued_rows += rows
            full = self.pending_rows >= self.page_rows
        if full:
            self._encode_pending()
        if self.queued_rows >= self.settings.segment_rows:
            self._wake.set()
        return True

    def _encode_pending(self) -> None:
        with self._guard:
            items, rows = self.pending, self.pending_rows
            self.pending, self.pending_rows = [], 0
        if not items:
            return
        try:
            columns, first = self.build(items)
            # String columns are always OPTIONAL, so every page of a column has the same schema.
            pages = [encode_page(c, codec=self.settings.codec, optional=c.kind == "string") for c in columns]
        except Exception:  # a bug in encoding must not fail a request or stop the log
            log.exception("Failed to encode %d %s rows; dropped them", rows, self.what)
            with self._guard:
                self.queued_rows -= rows
            self.counts.failed_segments += 1
            return
        with self._guard:
            self.pages.append((rows, first, pages))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        while self.retry:
            uri, data, rows = self.retry[0]
            if not self._write(uri, data, retried=True):
                return
            self.retry.popleft()
        self._encode_pending()  # what waited less than a page
        while True:
            groups: list[tuple[int, datetime, list[Page]]] = []
            rows = 0
            with self._guard:
                while self.pages and rows < self.settings.segment_rows:
                    group = self.pages.popleft()
                    groups.append(group)
                    rows += group[0]
                self.queued_rows -= rows
            if not groups:
                return
            try:
                data = write_pages([list(col) for col in zip(*(g[2] for g in groups), strict=True)],
                                   metadata={"modelship.revision": self.settings.revision})
            except Exception:
                log.exception("Failed to assemble a %s segment of %d rows; dropped it", self.what, rows)
                self.counts.failed_segments += 1
                continue
            self.seq += 1
            first = min(g[1] for g in groups)
            uri = layout.segment_name(self.prefix, self.directory, first, f"{self.stem}.{self.seq:06d}")
            if not self._write(uri, data, retried=False):
                self.retry.append((uri, data, rows))
                while len(self.retry) > MAX_RETRY_SEGMENTS:
                    self.retry.popleft()
                    self.counts.failed_segments += 1
                return

    def _write(self, uri: str, data: bytes, retried: bool) -> bool:
        try:
            store.write_uri(uri, data)
        except store.ArtifactError as exc:
            log.warning("Failed to write %s segment %s (%s); retrying at the next flush", self.what, uri, exc)
            return False
        self.counts.segments += 1
        self.counts.bytes += len(data)
        log.debug("Wrote %s segment %s (%d bytes%s)", self.what, uri, len(data), ", retried" if retried else "")
        return True

    def close(self) -> None:
        """Stop the thread and write what is queued (at shutdown)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()


class PredictionLog(Collector):
    """Logs (request id, time, revision, inputs, prediction, probabilities) per row; takes labels too."""

    def __init__(self, model: str, version: str, metadata: Metadata, settings: PredictionLogSettings) -> None:
        if not settings.uri:
            raise ValueError("the prediction log needs MODELSHIP_PREDICTION_LOG_URI")
        clash = [f.name for f in metadata.features if f.name in layout.RESERVED
                 or f.name.startswith(layout.PROBA_PREFIX)]
        if clash:
            raise ValueError(f"feature name(s) {clash} clash with the log's own columns {sorted(layout.RESERVED)}")
        self.model = model
        self.version = version
        self.metadata = metadata
        self.settings = settings
        self.counts = _Counts()
        self._rng = random.Random()
        self.tensor_input = metadata.tensor_input if metadata.input_mode == InputMode.TENSOR else None
        roles = {o.role: o.name for o in metadata.outputs}
        self.label_output = roles.get("label") or roles.get("value")
        self.proba_output = roles.get("probabilities")
        self.classes = list(metadata.classes or [])
        host = socket.gethostname()
        nonce = f"{random.getrandbits(32):08x}"
        revision = settings.revision or "unknown"
        self.predictions = Segments(settings.uri, layout.PREDICTIONS_DIR, f"{revision}.{host}.{nonce}",
                                    settings, self._prediction_columns, self.counts, "prediction", PAGE_ROWS)
        self.labels = Segments(settings.uri, layout.FEEDBACK_DIR, f"{host}.{nonce}", settings,
                               _label_columns, self.counts, "label", 1)

    # -- the request path ------------------------------------------------------

    def tap(self, request_id: str, feed: Feed, rows: int, reply: Reply) -> Reply:
        """``reply`` wrapped so that a successful result is queued for the log first."""
        ratio = self.settings.sample_ratio
        if ratio < 1.0 and self._rng.random() >= ratio:
            self.counts.sampled_out += rows
            return reply

        def logged(result: Feed | BaseException) -> None:
            if not isinstance(result, BaseException):
                if self.predictions.offer((request_id, time.time(), feed, result, rows), rows):
                    self.counts.logged += rows
                else:
                    self.counts.dropped += rows
            reply(result)

        return logged

    def add_labels(self, labels: list[tuple[str, int, str]]) -> int:
        """Queue (request id, row, label) triples from the feedback endpoint; returns how many were taken."""
        if self.labels.offer((time.time(), labels), len(labels)):
            self.counts.labels += len(labels)
            return len(labels)
        self.counts.labels_dropped += len(labels)
        return 0

    def close(self) -> None:
        self.predictions.close()
        self.labels.close()

    # -- the writer thread -----------------------------------------------------

    def _prediction_columns(self, items: list[Any]) -> tuple[list[Column], datetime]:
        counts = np.fromiter((it[4] for it in items), dtype=np.int64, count=len(items))
        stamps = (np.fromiter((it[1] for it in items), dtype=np.float64, count=len(items)) * 1e6).astype(np.int64)
        total = int(counts.sum())
        if total == len(items):  # one row per request: the common case, no repetition needed
            ids = [it[0] for it in items]
            row = np.zeros(total, dtype=np.int64)
        else:
            ids = list(itertools.chain.from_iterable([it[0]] * it[4] for it in items))
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            row = np.arange(total, dtype=np.int64) - starts
            stamps = np.repeat(stamps, counts)
        columns = [
            Column(layout.REQUEST_ID, "string", ids),
            Column(layout.ROW, "int64", row),
            Column(layout.TIME, "timestamp", stamps),
            Column(layout.REVISION, "string", [self.settings.revision] * total),
            Column(layout.MODEL_VERSION, "string", [self.version] * total),
        ]
        columns += self._feature_columns([it[2] for it in items])
        columns += self._output_columns([it[3] for it in items])
        first = datetime.fromtimestamp(int(stamps.min()) / 1e6, UTC)
        return columns, first

    def _feature_columns(self, feeds: list[Feed]) -> list[Column]:
        features = self.metadata.features
        if self.tensor_input is not None:
            block = np.concatenate([f[self.tensor_input] for f in feeds]).astype(np.float64, copy=False)
            return [Column(f.name, "double", block[:, j]) for j, f in enumerate(features)]
        out = []
        for f in features:
            values = np.concatenate([feed[f.name].reshape(-1) for feed in feeds])
            if f.dtype == "string":
                out.append(Column(f.name, "string", [v if isinstance(v, str) else _text(v) for v in values.tolist()]))
            elif f.dtype == "int64":
                out.append(Column(f.name, "int64", values.astype(np.int64, copy=False)))
            else:
                out.append(Column(f.name, "double", values.astype(np.float64, copy=False)))
        return out

    def _output_columns(self, outputs: list[Feed]) -> list[Column]:
        out = []
        if self.label_output is not None:
            values = np.concatenate([o[self.label_output].reshape(-1) for o in outputs])
            if values.dtype == object:
                out.append(Column(layout.PREDICTION, "string", [_text(v) for v in values.tolist()]))
            elif values.dtype.kind in "iub":
                out.append(Column(layout.PREDICTION, "int64", values.astype(np.int64)))
            else:
                out.append(Column(layout.PREDICTION, "double", values.astype(np.float64)))
        if self.proba_output is not None and self.classes:
            proba = np.concatenate([o[self.proba_output] for o in outputs]).astype(np.float64, copy=False)
            if proba.ndim == 2 and proba.shape[1] == len(self.classes):
                out += [Column(layout.proba_column(c), "double", proba[:, j]) for j, c in enumerate(self.classes)]
        return out

    # -- metrics ----------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        c = self.counts
        rows = CounterMetricFamily("modelship_prediction_log_rows", "Prediction rows by what became of them: "
                                   "logged, dropped (queue full), sampled_out.", labels=["model", "outcome"])
        for outcome, n in (("logged", c.logged), ("dropped", c.dropped), ("sampled_out", c.sampled_out)):
            rows.add_metric([self.model, outcome], float(n))
        yield rows
        segments = CounterMetricFamily("modelship_prediction_log_segments", "Parquet segments written or "
                                       "given up on (predictions and labels).", labels=["model", "outcome"])
        segments.add_metric([self.model, "written"], float(c.segments))
        segments.add_metric([self.model, "failed"], float(c.failed_segments))
        yield segments
        written = CounterMetricFamily("modelship_prediction_log_bytes", "Bytes of segments written.",
                                      labels=["model"])
        written.add_metric([self.model], float(c.bytes))
        yield written
        queued = GaugeMetricFamily("modelship_prediction_log_queue_rows", "Rows waiting to be written.",
                                   labels=["model"])
        queued.add_metric([self.model], float(self.predictions.queued_rows))
        yield queued
        labels = CounterMetricFamily("modelship_feedback_labels", "Labels received on the feedback endpoint, "
                                     "by outcome: accepted, dropped (queue full).", labels=["model", "outcome"])
        labels.add_metric([self.model, "accepted"], float(c.labels))
        labels.add_metric([self.model, "dropped"], float(c.labels_dropped))
        yield labels


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _label_columns(items: list[Any]) -> tuple[list[Column], datetime]:
    ids: list[str] = []
    rows: list[int] = []
    labels: list[str] = []
    times: list[int] = []
    for t, triples in items:
        micros = int(t * 1_000_000)
        for request_id, row, label in triples:
            ids.append(request_id)
            rows.append(row)
            labels.append(label)
            times.append(micros)
    columns = [
        Column(layout.REQUEST_ID, "string", ids),
        Column(layout.ROW, "int64", np.asarray(rows, dtype=np.int64)),
        Column(layout.LABEL, "string", labels),
        Column(layout.TIME, "timestamp", np.asarray(times, dtype=np.int64)),
    ]
    return columns, datetime.fromtimestamp(min(times) / 1e6, UTC)


def load(model: str, version: str, metadata: Metadata | None,
         settings: PredictionLogSettings | None = None) -> PredictionLog | None:
    """The log for a loaded model, or None when it is off (no URI) or cannot run (logged why)."""
    settings = settings or PredictionLogSettings()
    if not settings.uri:
        return None
    if metadata is None:
        log.warning("Prediction log off for model %s: a bare ONNX model has no feature names", model)
        return None
    try:
        return PredictionLog(model, version, metadata, settings)
    except ValueError as exc:
        log.error("Prediction log off for model %s: %s", model, exc)
        return None
