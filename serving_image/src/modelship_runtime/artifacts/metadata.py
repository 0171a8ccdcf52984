"""metadata.json: what an artifact says about its model.

One schema for the trainer (writes it), the server (reads inputs, outputs and
the drift reference) and the operator (reads metrics and the reference). It
uses pydantic only, so every image can import it.

Binning convention, used everywhere (trainer, server histograms, drift maths):
a numeric reference has sorted, distinct ``edges`` e_0 < ... < e_{k-1} and
k + 1 bins: bin 0 holds x <= e_0, bin i holds e_{i-1} < x <= e_i, bin k holds
x > e_{k-1}. It is the Prometheus ``le`` convention, so a server's cumulative
histogram buckets on these edges give the bin counts by differencing.
NaN is never binned (counted apart as missing). A categorical reference has
``categories`` and one extra last bin, ``__other__``, for unseen values; None,
NaN and the empty string are a missing category, never binned.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SCHEMA_VERSION = 1
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
OTHER_CATEGORY = "__other__"
PREDICTION = "__prediction__"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class InputMode(StrEnum):
    # One input named by ``tensorInput`` of shape [N, F]: all features numeric.
    TENSOR = "tensor"
    # One input per feature, shape [N, 1], named after the feature.
    COLUMNS = "columns"


class Feature(_Wire):
    name: str
    type: FeatureType
    # ONNX element type the model takes for it: float, double, int64 or string.
    dtype: Literal["float", "double", "int64", "string"] = "float"


class NumericReference(_Wire):
    type: Literal["numeric"] = "numeric"
    edges: list[float] = Field(description="Sorted distinct inner edges; len(edges)+1 bins.")
    proportions: list[float] = Field(description="Training share per bin; sums to 1.")
    missing_ratio: float = 0.0


class CategoricalReference(_Wire):
    type: Literal["categorical"] = "categorical"
    categories: list[str] = Field(description="Known values; the last bin is __other__.")
    proportions: list[float] = Field(description="len(categories)+1 shares; sums to 1.")
    missing_ratio: float = 0.0


Reference = NumericReference | CategoricalReference


class DriftReference(_Wire):
    features: dict[str, NumericReference | CategoricalReference] = Field(default_factory=dict)
    prediction: NumericReference | CategoricalReference | None = None
    rows: int = 0


class Output(_Wire):
    name: str
    role: Literal["label", "probabilities", "value"]


class Calibration(_Wire):
    """How well a binary classifier's positive-class probability is calibrated on the training
    holdout, and the map that calibrates it (what CBPE estimates from; ``groundtruth.cbpe``)."""

    method: Literal["none", "isotonic"] = "none"
    rows: int = 0
    ece: float = Field(description="Expected calibration error of the raw probabilities (10 equal-count bins).")
    ece_calibrated: float | None = Field(default=None, description="ECE of the isotonic map, cross-fitted.")
    brier: float | None = None
    reliability: list[list[float]] = Field(default_factory=list, description="[mean p, share positive, rows] per bin.")
    x: list[float] = Field(default_factory=list, description="Isotonic map breakpoints (raw probability).")
    y: list[float] = Field(default_factory=list, description="Isotonic map values (calibrated probability).")


class Metadata(_Wire):
    schema_version: int = SCHEMA_VERSION
    model_name: str = "model"
    model_version: str = ""
    task: Literal["binary", "multiclass", "regression"]
    features: list[Feature]
    input_mode: InputMode
    tensor_input: str | None = Field(default=None, description="Input name in tensor mode.")
    tensor_dtype: Literal["float", "double"] | None = None
    outputs: list[Output]
    # Inputs whose missing values the graph fills in (an imputer reads them first): the server
    # accepts null (and NaN) there, as "" (``missing_category``) for string inputs, and 400s
    # a null anywhere else. Empty for artifacts that do not say (a bare model, older trainers).
    imputed_inputs: list[str] = Field(default_factory=list)
    missing_category: str = Field(default="", description="What a string input's missing value is in the graph.")
    classes: list[Any] | None = None
    metric: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    cv_score: float | None = None
    best_estimator: str | None = None
    best_params: dict[str, Any] = Field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = Field(default_factory=list)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    # False: the trainer wrote the artifact for inspection but a gate failed.
    gates_passed: bool | None = None
    champion_score: float | None = Field(default=None, description="The champion's holdout score.")
    fairness: dict[str, Any] | None = None
    feature_importance: dict[str, float] = Field(default_factory=dict)
    onnx_max_delta: float | None = None
    onnx_label_agreement: float | None = None
    dataset_uri: str | None = None
    dataset_sha256: str | None = None
    dataset_rows: int | None = None
    spec_hash: str | None = None
    model_sha256: str = Field(description="sha256 of model.onnx")
    versions: dict[str, str] = Field(default_factory=dict, description="sklearn, skl2onnx, onnxruntime, ...")
    created: str | None = None
    reference: DriftReference = Field(default_factory=DriftReference)
    calibration: Calibration | None = Field(default=None, description="Binary classifiers: for CBPE.")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")
