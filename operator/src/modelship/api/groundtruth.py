"""Ground truth: the prediction log, label sources, live quality and production datasets.

Shared by three kinds: a Model's ``serving.predictionLog`` turns the log on,
a DriftMonitor's ``performance`` section measures quality per revision from
logged predictions joined with labels, and a TrainingJob's
``dataset.production`` trains on the labelled production rows of a window.
The quality Job and the trainer parse these same models.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from modelship.api.common import Duration, ResourceRequirements, Spec, Status, cel_config

GROUNDTRUTH_URI_PATTERN = r"^(file|s3)://.+"
LABEL_URI_PATTERN = r"^(file|s3|https?)://.+"
TIME_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"


class SecretKeyRef(Spec):
    """A key of a Secret in the object's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret.")


class PredictionLog(Spec):
    """Log predictions (request id, time, revision, inputs, prediction, probabilities) as Parquet
    segments under ``<artifactStore>/<namespace>/_groundtruth/<model>/predictions/``."""

    enabled: bool = Field(default=True, description="Log predictions and accept labels on POST .../feedback.")
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of requests logged.")
    flush_interval: Duration = Field(default="30s", description="Longest time a prediction waits to be written.")
    max_queue_rows: int = Field(
        default=200_000, ge=100, le=10_000_000,
        description="Rows a pod holds before writing; above it predictions are served but not logged (counted).",
    )
    feedback_token_secret: SecretKeyRef | None = Field(
        default=None,
        description="Bearer token POST /v2/models/<model>/feedback requires. Without it anyone who reaches "
        "the Service may post labels.",
    )


class LabelFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class LabelSource(Spec):
    """Labels that arrive late and in bulk: CSV or Parquet with a request id and a label."""

    uri: str = Field(
        pattern=LABEL_URI_PATTERN,
        description="A file (file://, s3://, http(s)://) or a prefix ending in '/' (file://, s3://) whose "
        "CSV and Parquet files are all read.",
    )
    format: LabelFormat | None = Field(default=None, description="csv or parquet; from each file's suffix when unset.")
    id_column: str = Field(default="request_id", min_length=1, description="Column holding the request id.")
    row_column: str = Field(
        default="row", min_length=1,
        description="Column holding the row within the request; rows without it are row 0.",
    )
    label_column: str = Field(default="label", min_length=1, description="Column holding the true label.")


class ProductionData(Spec):
    """Train on the labelled production rows of a window: logged predictions joined with their labels."""

    model_config = cel_config([{
        "rule": "timestamp(self.start) < timestamp(self.end)", "message": "start must be before end",
        "fieldPath": ".start",
    }])

    uri: str = Field(pattern=GROUNDTRUTH_URI_PATTERN,
                     description="The Model's ground-truth prefix (predictions/ and labels/feedback/ below it).")
    labels: list[LabelSource] = Field(
        default_factory=list, max_length=20,
        description="Label sources besides the feedback labels under the prefix (always read).",
    )
    start: str = Field(pattern=TIME_PATTERN, description="Predictions made at or after this time (RFC 3339).")
    end: str = Field(pattern=TIME_PATTERN, description="Predictions made before this time (RFC 3339).")
    revisions: list[str] | None = Field(default=None, description="Only these revisions' predictions; all when unset.")
    include_training_data: bool = Field(
        default=False, description="Append the labelled production rows to dataset.uri's rows instead of replacing them.",
    )
    min_rows: int = Field(default=50, ge=1, description="Fewer labelled rows than this fail the run (InvalidData).")


class PerformanceMetric(StrEnum):
    """Live quality metrics (higher is better)."""

    ACCURACY = "accuracy"
    BALANCED_ACCURACY = "balanced_accuracy"
    F1 = "f1"
    PRECISION = "precision"
    RECALL = "recall"
    ROC_AUC = "roc_auc"
    R2 = "r2"


class RetrainData(StrEnum):
    PRODUCTION = "production"
    PRODUCTION_AND_TRAINING = "productionAndTraining"
    TRAINING = "training"


class Performance(Spec):
    """Live model quality: logged predictions joined with labels, per revision, on a schedule."""

    metric: PerformanceMetric = Field(default=PerformanceMetric.ACCURACY, description="What is measured.")
    floor: float = Field(description="The stable revision's metric below this (with enough labels) is a drop.")
    min_labelled_rows: int = Field(default=200, ge=1, le=10_000_000,
                                   description="Fewer labelled rows than this give no verdict.")
    window: Duration = Field(default="24h", description="Predictions made within this window are evaluated.")
    interval: Duration = Field(default="10m", description="How often quality is measured (one short Job each time).")
    labels: list[LabelSource] = Field(
        default_factory=list, max_length=20,
        description="Label files or prefixes; the feedback endpoint's labels are always read too.",
    )
    retrain: bool = Field(default=True, description="A drop creates a TrainingJob (trigger performance).")
    retrain_data: RetrainData = Field(
        default=RetrainData.PRODUCTION,
        description="What the retrain trains on: production (the window's labelled rows), productionAndTraining "
        "(those appended to dataset.uri's rows) or training (dataset.uri alone).",
    )
    estimate: bool = Field(
        default=True,
        description="Binary classifiers: estimate accuracy and ROC AUC from the served probabilities before "
        "labels arrive (CBPE, calibrated on the training holdout).",
    )
    resources: ResourceRequirements | None = Field(default=None, description="The quality Job's resources.")


class QualityState(StrEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    NOT_ENOUGH_LABELS = "NotEnoughLabels"


class RevisionQuality(Status):
    revision: str = Field(description="Serving revision.")
    rows: int = Field(default=0, description="Predictions logged in the window.")
    labelled: int = Field(default=0, description="Of those, with a label.")
    value: float | None = Field(default=None, description="The metric on the labelled rows (realised).")
    estimated: float | None = Field(default=None, description="The metric estimated without labels (CBPE), "
                                    "accuracy or roc_auc only.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Every realised metric.")
    estimates: dict[str, float] = Field(default_factory=dict, description="Every estimated metric.")
    state: QualityState | None = Field(default=None, description="Healthy, Degraded or NotEnoughLabels.")


class PerformanceStatus(Status):
    state: QualityState | None = Field(default=None, description="The stable revision's state.")
    revision: str | None = Field(default=None, description="The stable revision judged.")
    last_evaluated: str | None = Field(default=None, description="When the last quality Job finished.")
    window_start: str | None = Field(default=None, description="Start of the last evaluated window.")
    window_end: str | None = Field(default=None, description="End of the last evaluated window.")
    job: str | None = Field(default=None, description="The quality Job in flight.")
    job_window_end: str | None = Field(default=None, description="End of the window the Job in flight measures.")
    predictions: int | None = Field(default=None, description="Predictions logged in the last window.")
    labelled: int | None = Field(default=None, description="Of those, with a label.")
    seconds: float | None = Field(default=None, description="Time the last join and metrics took in the Job.")
    revisions: list[RevisionQuality] = Field(default_factory=list, description="Quality per revision, newest first.")
    last_triggered_training_job: str | None = Field(default=None, description="Last TrainingJob a drop created.")
    triggered_at: list[str] = Field(default_factory=list, description="Performance retrain times in the last 24 h.")
