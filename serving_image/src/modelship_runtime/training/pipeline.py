"""Preprocessing + estimator as one scikit-learn Pipeline, all ONNX-convertible.

Tensor mode (all features numeric): impute → scale → PCA → estimator on one
matrix. Columns mode (some categorical): a ColumnTransformer takes each
feature by name (numeric: impute, scale, PCA; categorical: impute, one-hot),
which skl2onnx maps to one ONNX input per feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from modelship.api.trainingjob import Pipeline as PipelineSpec
from modelship.api.trainingjob import Scaling
from modelship_runtime.training.data import MISSING_CATEGORY
from modelship_runtime.training.errors import SpecError

ESTIMATOR_STEP = "est"
FLOAT32_STEP = "float32"


class Float32(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Casts to float32 before tree models, as they do themselves.

    A no-op for scikit-learn's results; it marks the place where the ONNX
    graph switches to float32 (``convert`` registers its converter).
    """

    def fit(self, X: Any, y: Any = None) -> Float32:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X, dtype=np.float32)


def _scaler(scaling: str) -> Any | None:
    return {
        Scaling.STANDARD: StandardScaler(),
        Scaling.MINMAX: MinMaxScaler(),
        Scaling.ROBUST: RobustScaler(),
    }.get(Scaling(scaling))


def numeric_steps(spec: PipelineSpec, n_numeric: int, seed: int) -> list[tuple[str, Any]]:
    imp = spec.imputation
    imputer = SimpleImputer(strategy=str(imp.numeric), fill_value=imp.fill_value)
    steps: list[tuple[str, Any]] = [("impute", imputer)]
    scaler = _scaler(str(spec.scaling))
    if scaler is not None:
        steps.append(("scale", scaler))
    if spec.pca is not None:
        if spec.pca.components > n_numeric:
            raise SpecError(
                f"pipeline.pca.components is {spec.pca.components} but there are only "
                f"{n_numeric} numeric features; lower it"
            )
        steps.append(("pca", PCA(n_components=spec.pca.components, random_state=seed)))
    return steps


def categorical_steps(spec: PipelineSpec) -> list[tuple[str, Any]]:
    imp = spec.imputation
    imputer = SimpleImputer(
        missing_values=MISSING_CATEGORY,
        strategy=str(imp.categorical),
        fill_value=imp.categorical_fill_value,
    )
    if spec.one_hot:
        encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        # Without one-hot the categories become ordinal codes (unknown: -1).
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    return [("impute", imputer), ("encode", encoder)]


def build_pipeline(
    spec: PipelineSpec,
    numeric: list[str],
    categorical: list[str],
    estimator: Any,
    seed: int,
    float32: bool = False,
) -> Pipeline:
    """The full pipeline; ``float32`` puts a Float32 cast before the estimator."""
    last: list[tuple[str, Any]] = [(FLOAT32_STEP, Float32())] if float32 else []
    last.append((ESTIMATOR_STEP, estimator))
    if not categorical:
        return Pipeline([*numeric_steps(spec, len(numeric), seed), *last])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", Pipeline(numeric_steps(spec, len(numeric), seed)), numeric))
    parts.append(("cat", Pipeline(categorical_steps(spec)), categorical))
    pre = ColumnTransformer(parts, sparse_threshold=0.0)
    return Pipeline([("pre", pre), *last])


def imputed_features(pipeline: Pipeline, numeric: list[str]) -> list[str]:
    """The features whose missing values the fitted ``pipeline`` fills in before anything else reads them.

    Read from the pipeline itself, not from the spec: a column counts when a
    SimpleImputer is the first step it meets (the whole matrix in tensor mode,
    its ColumnTransformer branch in columns mode).
    """
    first = pipeline.steps[0][1]
    if isinstance(first, SimpleImputer):
        return list(numeric)
    if not isinstance(first, ColumnTransformer):
        return []
    out: list[str] = []
    for _, transformer, columns in first.transformers_:
        head = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
        if isinstance(head, SimpleImputer) and isinstance(columns, list | tuple):
            out += [str(c) for c in columns]
    return out
