"""TrainingJob: one training run, from a dataset to a checked ONNX artifact.

The trainer (``modelship-train``) parses exactly this spec, so the CRD, the
operator and the trainer agree on one schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from modelship.api.common import (
    CelRule,
    Condition,
    LocalObjectReference,
    ResourceRequirements,
    Spec,
    Status,
    cel_config,
)
from modelship.api.groundtruth import ProductionData

URI_PATTERN = r"^(file|s3|https?)://.+"


class DatasetFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class Task(StrEnum):
    AUTO = "auto"
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


class Dataset(Spec):
    """Where the training data is and which columns matter."""

    uri: str = Field(
        pattern=URI_PATTERN,
        description="file://, s3:// or http(s):// URI of a CSV or Parquet file. "
        "For retraining on drift it should point at the newest data.",
    )
    format: DatasetFormat | None = Field(
        default=None, description="csv or parquet; inferred from the URI's suffix when unset."
    )
    target: str = Field(min_length=1, description="Column to predict.")
    features: list[str] | None = Field(
        default=None, description="Columns to learn from; all but the target when unset."
    )
    categorical_features: list[str] | None = Field(
        default=None,
        description="Columns to one-hot encode; inferred (non-numeric columns) when unset.",
    )
    sensitive_feature: str | None = Field(
        default=None,
        description="Column for fairness checks (demographic parity, equalized odds). "
        "It is not used as a model input unless also listed in features.",
    )
    max_missing_ratio: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Refuse the data when a used column has more missing values than this share.",
    )
    production: ProductionData | None = Field(
        default=None,
        description="Train on logged production predictions joined with their labels (written next to the "
        "artifact as dataset.parquet, with its sha256) instead of, or after, the rows at uri.",
    )


class NumericImputation(StrEnum):
    MEAN = "mean"
    MEDIAN = "median"
    MOST_FREQUENT = "most_frequent"
    CONSTANT = "constant"


class CategoricalImputation(StrEnum):
    MOST_FREQUENT = "most_frequent"
    CONSTANT = "constant"


class Scaling(StrEnum):
    NONE = "none"
    STANDARD = "standard"
    MINMAX = "minmax"
    ROBUST = "robust"


class Imputation(Spec):
    """How missing values are filled (all steps convert to ONNX)."""

    numeric: NumericImputation = Field(default=NumericImputation.MEDIAN, description="Strategy for numeric columns.")
    categorical: CategoricalImputation = Field(
        default=CategoricalImputation.MOST_FREQUENT, description="Strategy for categorical columns."
    )
    fill_value: float = Field(default=0.0, description="Numeric value used by the constant strategy.")
    categorical_fill_value: str = Field(
        default="missing", description="Category used by the constant strategy."
    )


class PCA(Spec):
    """Optional PCA after scaling, on the numeric columns."""

    components: int = Field(ge=1, le=1000, description="Number of principal components kept.")


class Pipeline(Spec):
    """Preprocessing before the estimator."""

    imputation: Imputation = Field(default_factory=Imputation, description="Missing-value handling.")
    scaling: Scaling = Field(default=Scaling.STANDARD, description="none, standard, minmax or robust.")
    one_hot: bool = Field(default=True, description="One-hot encode categorical columns.")
    pca: PCA | None = Field(default=None, description="Optional PCA on numeric columns.")


class Estimator(StrEnum):
    """The allow-list: every one converts with skl2onnx. No class path is ever imported."""

    LOGISTIC_REGRESSION = "LogisticRegression"
    LINEAR_REGRESSION = "LinearRegression"
    RIDGE = "Ridge"
    LASSO = "Lasso"
    ELASTIC_NET = "ElasticNet"
    LINEAR_SVM = "LinearSVM"
    SVM = "SVM"
    K_NEIGHBORS = "KNeighbors"
    NAIVE_BAYES = "NaiveBayes"
    DECISION_TREE = "DecisionTree"
    RANDOM_FOREST = "RandomForest"
    EXTRA_TREES = "ExtraTrees"
    GRADIENT_BOOSTING = "GradientBoosting"
    HIST_GRADIENT_BOOSTING = "HistGradientBoosting"
    MLP = "MLP"


class DistributionKind(StrEnum):
    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    INT_UNIFORM = "intUniform"


class Distribution(Spec):
    """A parameter distribution for random search."""

    kind: DistributionKind = Field(description="uniform, logUniform or intUniform.")
    low: float = Field(description="Lower bound (inclusive).")
    high: float = Field(description="Upper bound.")


ParamValues = Annotated[
    list[Any],
    Field(json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}}),
]


class Candidate(Spec):
    """One estimator from the allow-list with the values to search."""

    estimator: Estimator = Field(description="Estimator name from the allow-list.")
    params: dict[str, ParamValues] = Field(
        default_factory=dict,
        description="Parameter name to the list of values to try, e.g. {C: [0.1, 1, 10]}.",
    )
    distributions: dict[str, Distribution] = Field(
        default_factory=dict, description="Parameter distributions for random search."
    )


class SearchStrategy(StrEnum):
    GRID = "grid"
    RANDOM = "random"


class Search(Spec):
    """Model selection: cross-validated grid or random search under a budget."""

    strategy: SearchStrategy = Field(default=SearchStrategy.GRID, description="grid or random.")
    cv_folds: int = Field(default=5, ge=2, le=20, description="Folds of k-fold cross-validation.")
    max_fits: int = Field(default=200, ge=1, le=100000, description="Most candidate settings fitted.")
    max_seconds: int = Field(default=600, ge=1, le=86400, description="Search time budget.")
    random_iterations: int = Field(default=20, ge=1, le=10000, description="Settings drawn per candidate (random).")
    holdout_ratio: float = Field(default=0.2, gt=0.0, lt=0.9, description="Share kept out for the gates.")
    seed: int = Field(default=42, ge=0, description="Seed for splits and estimators: runs are reproducible.")
    parallelism: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Pods scoring the search at once. 1 runs the whole training in one pod; N > 1 runs "
        "the cells (parameter setting x CV fold) as one Indexed Job of N pods, each with this "
        "TrainingJob's resources, then one refit pod. The result is the same as with 1.",
    )


class Metric(StrEnum):
    ACCURACY = "accuracy"
    BALANCED_ACCURACY = "balanced_accuracy"
    F1 = "f1"
    F1_MACRO = "f1_macro"
    PRECISION = "precision"
    RECALL = "recall"
    ROC_AUC = "roc_auc"
    LOG_LOSS = "log_loss"
    R2 = "r2"
    RMSE = "rmse"
    MAE = "mae"


LOWER_IS_BETTER = frozenset({Metric.LOG_LOSS, Metric.RMSE, Metric.MAE})


class Threshold(Spec):
    """A floor and/or ceiling on one holdout metric."""

    model_config = cel_config(
        [
            {"rule": "has(self.min) || has(self.max)", "message": "a threshold needs min or max"}
        ]
    )

    metric: Metric = Field(description="Metric name.")
    min: float | None = Field(default=None, description="The metric must be at least this.")
    max: float | None = Field(default=None, description="The metric must be at most this.")

    def check(self, values: Mapping[str, float]) -> tuple[bool, str]:
        """Whether ``values`` (holdout metrics) meet this threshold, and a message saying why.

        The one threshold gate: the trainer applies it to what it measures, and the operator
        again to what a TrainingJob reports (a Model's gates may have changed since).
        """
        value = values.get(str(self.metric))
        if value is None:
            return False, f"{self.metric} was not measured on the holdout for this task"
        problems = []
        if self.min is not None and value < self.min:
            problems.append(f"below min {self.min:.6g}")
        if self.max is not None and value > self.max:
            problems.append(f"above max {self.max:.6g}")
        if problems:
            return False, f"{self.metric} {value:.6g} " + " and ".join(problems)
        bounds = " and ".join(b for b in (f"min {self.min:.6g}" if self.min is not None else "",
                                          f"max {self.max:.6g}" if self.max is not None else "") if b)
        return True, f"{self.metric} {value:.6g} within {bounds}"


class FairnessMitigation(StrEnum):
    NONE = "none"
    REWEIGHING = "reweighing"


class Fairness(Spec):
    """Group fairness on the dataset's sensitiveFeature (holdout)."""

    max_demographic_parity_difference: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Largest allowed demographic parity difference."
    )
    max_equalized_odds_difference: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Largest allowed equalized odds difference."
    )
    mitigation: FairnessMitigation = Field(
        default=FairnessMitigation.NONE, description="none, or reweighing of training samples."
    )


class Gates(Spec):
    """Checks a new model must pass before it may reach traffic."""

    thresholds: list[Threshold] = Field(default_factory=list, description="Metric floors and ceilings.")
    max_onnx_delta: float = Field(
        default=1e-4,
        gt=0.0,
        le=1.0,
        description="Largest allowed |sklearn - onnxruntime| difference on the holdout.",
    )
    must_beat_champion: bool = Field(
        default=False, description="The new model must score better than the serving one."
    )
    min_improvement: float = Field(
        default=0.0, ge=0.0, description="How much better than the champion, in metric units."
    )
    fairness: Fairness | None = Field(default=None, description="Fairness limits.")


class Trigger(StrEnum):
    INITIAL = "initial"
    SPEC_CHANGE = "spec-change"
    MANUAL = "manual"
    DRIFT = "drift"
    ALERT = "alert"
    PERFORMANCE = "performance"


class TrainingTemplate(Spec):
    """What to train: the part of a TrainingJob a Model carries as a template."""

    dataset: Dataset = Field(description="Training data.")
    task: Task = Field(default=Task.AUTO, description="auto infers it from the target column.")
    pipeline: Pipeline = Field(default_factory=Pipeline, description="Preprocessing steps.")
    candidates: list[Candidate] = Field(
        min_length=1, max_length=20, description="Estimators to try, each with its search space."
    )
    search: Search = Field(default_factory=Search, description="Search strategy and budget.")
    metric: Metric | None = Field(
        default=None,
        description="Selection metric; accuracy for classification, r2 for regression when unset.",
    )
    resources: ResourceRequirements | None = Field(default=None, description="The trainer pod's resources.")
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Retries of the trainer pod.")
    active_deadline_seconds: int = Field(default=3600, ge=10, le=604800, description="Training time limit.")


TRAINING_TEMPLATE_RULES: list[CelRule] = [
    {
        "rule": "!has(self.metric) || !(self.task in ['binary', 'multiclass']) || "
        "!(self.metric in ['r2', 'rmse', 'mae'])",
        "message": "a regression metric (r2, rmse, mae) cannot select a classifier",
        "fieldPath": ".metric",
    },
    {
        "rule": "!has(self.metric) || self.task != 'regression' || self.metric in ['r2', 'rmse', 'mae']",
        "message": "a regression task needs a regression metric: r2, rmse or mae",
        "fieldPath": ".metric",
    },
]

FAIRNESS_NEEDS_SENSITIVE = "gates.fairness needs dataset.sensitiveFeature"

TRAINING_JOB_RULES: list[CelRule] = [
    *TRAINING_TEMPLATE_RULES,
    {
        "rule": "self == oldSelf",
        "message": "a TrainingJob's spec is immutable (it records one run); create a new TrainingJob instead",
    },
    {
        "rule": "!has(self.gates) || !has(self.gates.fairness) || has(self.dataset.sensitiveFeature)",
        "message": FAIRNESS_NEEDS_SENSITIVE,
        "fieldPath": ".gates.fairness",
    },
]


class TrainingJobSpec(TrainingTemplate):
    """One training run. Created by a Model, or by hand (then modelRef is empty)."""

    model_config = cel_config(TRAINING_JOB_RULES)

    model_ref: LocalObjectReference | None = Field(default=None, description="The Model this run is for.")
    gates: Gates = Field(default_factory=Gates, description="Checks the artifact must pass.")
    output_uri: str | None = Field(
        default=None,
        pattern=r"^(file|s3)://.+",
        description="Artifact directory (file:// or s3://), inside <store>/<namespace>/ or an allowed prefix's "
        "<prefix>/<namespace>/ (else the run fails with InvalidSpec); default <store>/<namespace>/<name>-<uid>/. "
        "Artifacts are write-once: a different model is never written over an existing one.",
    )
    champion_uri: str | None = Field(
        default=None,
        pattern=URI_PATTERN,
        description="The serving model's artifact, scored on the same holdout for mustBeatChampion: file://, "
        "s3:// or http(s):// (a Model's spec.source may serve from any of them).",
    )
    trigger: Trigger = Field(default=Trigger.MANUAL, description="Why this run exists.")
    ttl_seconds_after_finished: int = Field(
        default=3600, ge=0, description="How long the finished batch Job is kept."
    )

    @model_validator(mode="after")
    def _fairness_has_a_group(self) -> TrainingJobSpec:
        if self.gates.fairness is not None and self.dataset.sensitive_feature is None:
            raise ValueError(FAIRNESS_NEEDS_SENSITIVE)
        return self


class TrainingPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ArtifactRef(Status):
    uri: str = Field(description="Artifact directory holding model.onnx and metadata.json.")
    sha256: str = Field(description="sha256 of model.onnx.")


class DatasetDigest(Status):
    sha256: str = Field(description="sha256 of the dataset file as read.")
    rows: int = Field(description="Rows read.")


class LeaderboardEntry(Status):
    estimator: str = Field(description="Estimator name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Chosen parameters.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    score: float = Field(description="Mean cross-validated score (higher is better).")
    std: float | None = Field(default=None, description="Standard deviation across folds.")


class GateResult(Status):
    name: str = Field(description="Gate name, e.g. onnxParity, threshold:accuracy, champion, fairness.")
    passed: bool = Field(description="Whether it passed.")
    message: str = Field(default="", description="Measured value against the limit.")


class IndexPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class SearchIndex(Status):
    """One index (pod) of a fanned-out search."""

    index: int = Field(description="JOB_COMPLETION_INDEX of the share.")
    phase: IndexPhase = Field(description="Pending, Running, Succeeded or Failed.")
    cells: int | None = Field(default=None, description="Cells this index scored (once it succeeded).")
    failures: int = Field(default=0, description="Failed attempts (each is retried alone up to backoffLimit).")
    reason: str | None = Field(default=None, description="Why the last attempt failed, e.g. OOMKilled, InvalidData.")


class SearchProgress(Status):
    """How far the model search is: cells (setting x fold) scored, and the best so far."""

    parallelism: int = Field(default=1, description="Pods that scored the search.")
    job_name: str | None = Field(default=None, description="The Indexed Job scoring the cells (parallelism > 1).")
    cells_done: int = Field(default=0, description="Cells scored.")
    cells_total: int | None = Field(default=None, description="Cells in the search (settings x folds).")
    progress: str | None = Field(default=None, description="cellsDone/cellsTotal, for kubectl get.")
    best_score: float | None = Field(
        default=None, description="Best mean cross-validated score of a fully scored setting so far (metric units)."
    )
    stopped_by: str | None = Field(default=None, description="maxFits or maxSeconds when the budget cut the search.")
    indexes: list[SearchIndex] = Field(default_factory=list, description="Per-index outcome (parallelism > 1).")


class TrainingJobStatus(Status):
    observed_generation: int | None = Field(default=None, description="Last spec generation acted on.")
    phase: TrainingPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    job_name: str | None = Field(default=None, description="The batch/v1 Job running the trainer.")
    artifact: ArtifactRef | None = Field(default=None, description="The artifact written.")
    dataset: DatasetDigest | None = Field(default=None, description="Digest of the data trained on.")
    task: str | None = Field(default=None, description="binary, multiclass or regression.")
    best_estimator: str | None = Field(default=None, description="Estimator that won the search.")
    metric: str | None = Field(default=None, description="Selection metric.")
    score: float | None = Field(default=None, description="Holdout value of the selection metric.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout metrics.")
    leaderboard: list[LeaderboardEntry] = Field(default_factory=list, description="Top candidates.")
    search: SearchProgress | None = Field(default=None, description="Search progress: cells scored, best so far.")
    gates: list[GateResult] = Field(default_factory=list, description="Gate outcomes.")
    onnx_max_delta: float | None = Field(default=None, description="Largest sklearn/ONNX difference.")
    start_time: str | None = Field(default=None, description="When the trainer started.")
    completion_time: str | None = Field(default=None, description="When it finished.")
    duration_seconds: float | None = Field(default=None, description="Wall time of the run.")
    cpu_seconds: float | None = Field(default=None, description="CPU time the trainer used.")
    reason: str | None = Field(default=None, description="Why it failed, machine-readable; while Running, "
                               "PodNotStarting when its pod waits on something only a person can fix.")
    message: str | None = Field(default=None, description="Why it failed, or why its pod cannot start "
                                "(the kubelet's or the scheduler's words), for a person.")
    conditions: list[Condition] = Field(default_factory=list, description="Complete, Failed.")
