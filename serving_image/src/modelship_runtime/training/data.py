"""Loading the dataset and checking it before any fitting.

Every check raises DataError with a message naming the column and the fix.
Categorical values become strings and their missing values the empty string,
which is how the ONNX model (and so the server) takes them.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelship.api.trainingjob import Dataset, Task
from modelship_runtime.artifacts import store
from modelship_runtime.training.errors import DataError, SpecError, StoreError

MISSING_CATEGORY = ""
# An integer target with at most this many distinct values is taken for classes.
MAX_INFERRED_CLASSES = 20


@dataclass
class LoadedData:
    frame: pd.DataFrame
    sha256: str
    rows: int
    uri: str | None = None  # where the rows were written, when not dataset.uri (production data)


@dataclass
class Prepared:
    X: pd.DataFrame
    y: pd.Series
    sensitive: pd.Series | None
    numeric: list[str]
    categorical: list[str]
    task: Task
    classes: list[object] | None


def infer_format(dataset: Dataset) -> str:
    if dataset.format is not None:
        return str(dataset.format)
    path = dataset.uri.lower().split("?")[0]
    if path.endswith((".parquet", ".pq")):
        return "parquet"
    if path.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise SpecError(f"dataset.uri {dataset.uri}: cannot tell the format from the name; set dataset.format")


def _csv_header_duplicates(raw: bytes) -> list[str]:
    # pandas renames a repeated header to "name.1"; read the header as data to see it.
    first = pd.read_csv(io.BytesIO(raw), header=None, nrows=1, dtype=str)
    counts = Counter(str(v) for v in first.iloc[0])
    return sorted(name for name, n in counts.items() if n > 1)


def load(dataset: Dataset) -> LoadedData:
    """Read the file, digest its bytes and parse it."""
    fmt = infer_format(dataset)
    try:
        raw = store.read_uri(dataset.uri)
    except store.ArtifactNotFound as exc:
        raise DataError(f"dataset not found: {exc}; check dataset.uri") from exc
    except store.ArtifactError as exc:
        raise StoreError(f"cannot read the dataset: {exc}") from exc
    digest = store.sha256_hex(raw)
    try:
        if fmt == "csv":
            dupes = _csv_header_duplicates(raw)
            frame = pd.read_csv(io.BytesIO(raw))
        else:
            frame = pd.read_parquet(io.BytesIO(raw))
            dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    except Exception as exc:  # parsers raise many kinds; all mean the same here
        raise DataError(f"{dataset.uri}: cannot parse as {fmt}: {exc}") from exc
    if dupes:
        raise DataError(f"duplicated column names: {', '.join(dupes)}; rename or drop them")
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise DataError(f"{dataset.uri}: no rows")
    return LoadedData(frame=frame, sha256=digest, rows=len(frame))


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _as_category(series: pd.Series) -> pd.Series:
    out = series.astype(object).where(series.notna(), MISSING_CATEGORY)
    return out.map(lambda v: v if isinstance(v, str) else str(v)).astype(object)


def _infer_task(y: pd.Series) -> Task:
    if not _is_numeric(y):
        return Task.MULTICLASS if y.nunique() > 2 else Task.BINARY
    values = y.to_numpy(dtype=np.float64)
    integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
    distinct = int(y.nunique())
    if integral and distinct <= MAX_INFERRED_CLASSES:
        return Task.BINARY if distinct <= 2 else Task.MULTICLASS
    return Task.REGRESSION


def prepare(frame: pd.DataFrame, dataset: Dataset, task: Task, cv_folds: int, holdout: float) -> Prepared:
    """Select, type and check the columns; infer the task."""
    columns = list(frame.columns)
    if dataset.target not in columns:
        raise DataError(f"target column {dataset.target!r} is not in the data; columns: {', '.join(columns)}")
    features = dataset.features or [c for c in columns if c != dataset.target and c != dataset.sensitive_feature]
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(f"feature columns not in the data: {', '.join(missing)}; columns: {', '.join(columns)}")
    if dataset.target in features:
        raise DataError(f"the target {dataset.target!r} is also listed as a feature; remove it from features")
    if not features:
        raise DataError("no feature columns: the data holds only the target")
    if dataset.sensitive_feature and dataset.sensitive_feature not in columns:
        raise DataError(f"sensitiveFeature {dataset.sensitive_feature!r} is not in the data")
    declared = dataset.categorical_features
    if declared is not None:
        unknown = [c for c in declared if c not in features]
        if unknown:
            raise DataError(f"categoricalFeatures not among the features: {', '.join(unknown)}")

    used = [*features, dataset.target]
    for col in used:
        share = float(frame[col].isna().mean())
        limit = dataset.max_missing_ratio if col != dataset.target else 0.0
        if share > limit:
            what = "the target" if col == dataset.target else f"column {col!r}"
            raise DataError(
                f"{what} has {share:.1%} missing values, over the limit of {limit:.1%}"
                + ("; drop those rows" if col == dataset.target else "; raise dataset.maxMissingRatio or fix the data")
            )

    categorical: list[str] = []
    numeric: list[str] = []
    for col in features:
        series = frame[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            raise DataError(f"column {col!r} holds dates; turn it into numbers (e.g. days since) first")
        is_cat = col in declared if declared is not None else not _is_numeric(series)
        if not is_cat and not _is_numeric(series):
            sample = series.dropna().astype(str).head(3).tolist()
            raise DataError(
                f"column {col!r} is not numeric (values such as {sample}) "
                "and not in categoricalFeatures; list it there or fix the data"
            )
        (categorical if is_cat else numeric).append(col)

    X = frame[features].copy()
    for col in categorical:
        X[col] = _as_category(X[col])
    for col in numeric:
        X[col] = X[col].astype(np.float64)

    identical: list[str] = []
    for i, a in enumerate(features):
        for b in features[i + 1 :]:
            if X[a].equals(X[b]):
                identical.append(f"{a}={b}")
    if identical:
        raise DataError(f"duplicated columns (identical values): {', '.join(identical)}; keep one of each")

    y = frame[dataset.target]
    if task == Task.AUTO:
        task = _infer_task(y)
    classes: list[object] | None = None
    if task == Task.REGRESSION:
        if not _is_numeric(y):
            raise DataError(f"a regression target must be numeric; {dataset.target!r} is not")
        y = y.astype(np.float64)
    else:
        if _is_numeric(y) and bool(np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0)):
            y = y.astype(np.int64)
        else:
            y = y.astype(str)
        counts = y.value_counts()
        if len(counts) < 2:
            raise DataError(f"the target {dataset.target!r} has a single class ({counts.index[0]}); nothing to learn")
        if task == Task.BINARY and len(counts) > 2:
            raise DataError(f"task is binary but the target has {len(counts)} classes; use multiclass")
        smallest = int(counts.min())
        # The holdout takes its share of each class before the folds split the rest.
        in_training = int(smallest * (1 - holdout))
        if in_training < cv_folds:
            raise DataError(
                f"class {counts.idxmin()} has {smallest} rows: too few for {cv_folds} CV folds "
                f"after a {holdout:.0%} holdout; add data or lower search.cvFolds"
            )
        classes = sorted(counts.index.tolist())
    min_rows = max(2 * cv_folds, 10)
    if int(len(frame) * (1 - holdout)) < min_rows:
        raise DataError(
            f"{len(frame)} rows are too few: {cv_folds} CV folds after a {holdout:.0%} holdout need "
            f"at least {min_rows} training rows"
        )
    sensitive = None
    if dataset.sensitive_feature:
        sensitive = _as_category(frame[dataset.sensitive_feature])
    return Prepared(
        X=X, y=y, sensitive=sensitive, numeric=numeric, categorical=categorical, task=task, classes=classes
    )
