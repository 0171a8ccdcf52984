"""Where ground truth lives in the store, and the column names of its files.

Under a Model's ground-truth prefix (``<store>/<namespace>/_groundtruth/<model>/``;
the underscore cannot begin a Kubernetes name, so no TrainingJob's artifact
directory can collide with it)::

    predictions/date=YYYY-MM-DD/hour=HH/<revision>.<pod>.<nonce>.<seq>.parquet
    labels/feedback/date=YYYY-MM-DD/hour=HH/<pod>.<nonce>.<seq>.parquet

Hive-style partitions, so DuckDB, Spark or ``pyarrow.dataset`` read a prefix
as one table. Segment names carry the pod, a per-process random nonce and a
sequence number: every name is written once and never overwritten (S3 has no
rename; a re-run of a pod gets a new nonce).

A prediction log row is one input row of one request: ``request_id``,
``row`` (index within the request), ``time`` (UTC, microseconds),
``revision``, ``model_version``, one column per feature under the feature's
own name, ``prediction`` (label or value), and for classifiers
``proba_<class>`` per class. A label row is ``request_id``, ``row``
(default 0), ``label`` and optionally ``time``.
"""

from __future__ import annotations

from datetime import UTC, datetime

GROUNDTRUTH_DIR = "_groundtruth"
PREDICTIONS_DIR = "predictions"
LABELS_DIR = "labels"
FEEDBACK_DIR = "labels/feedback"

REQUEST_ID = "request_id"
ROW = "row"
TIME = "time"
REVISION = "revision"
MODEL_VERSION = "model_version"
PREDICTION = "prediction"
LABEL = "label"
PROBA_PREFIX = "proba_"
RESERVED = frozenset({REQUEST_ID, ROW, TIME, REVISION, MODEL_VERSION, PREDICTION, LABEL})


def groundtruth_uri(store: str, namespace: str, model: str) -> str:
    """The Model's ground-truth prefix, ending in a slash."""
    return f"{store.rstrip('/')}/{namespace}/{GROUNDTRUTH_DIR}/{model}/"


def proba_column(cls: object) -> str:
    return f"{PROBA_PREFIX}{cls}"


def partition(t: datetime) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of a UTC time."""
    t = t.astimezone(UTC)
    return f"date={t:%Y-%m-%d}/hour={t:%H}"


def hours_between(start: datetime, end: datetime) -> list[str]:
    """Partitions that may hold rows timed in [start, end]: a segment is named after its
    first row, and is flushed at most a segment interval later, so the hour before counts too."""
    from datetime import timedelta

    first = (start.astimezone(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC)
    out = []
    t = first
    while t <= last:
        out.append(partition(t))
        t += timedelta(hours=1)
    return out


def segment_name(prefix: str, directory: str, first: datetime, stem: str) -> str:
    """``<prefix><directory>/<partition>/<stem>.parquet``."""
    return f"{prefix.rstrip('/')}/{directory}/{partition(first)}/{stem}.parquet"
