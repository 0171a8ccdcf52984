"""The estimator allow-list: spec names to scikit-learn classes.

Only the classes named here are ever built; nothing from the spec is
imported. Each entry says which classes serve classification and regression
and whether its ONNX graph runs in float32 (tree models: scikit-learn itself
casts their input to float32, so ONNX does the same and stays exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modelship.api.trainingjob import Estimator

Factory = Callable[[int], Any]


@dataclass(frozen=True)
class Entry:
    classifier: Factory | None
    regressor: Factory | None
    # Spec parameter names are prefixed with this when the class is wrapped.
    classifier_prefix: str = ""
    float32: bool = False
    float32_regressor: bool | None = None

    def onnx_float32(self, classification: bool) -> bool:
        if not classification and self.float32_regressor is not None:
            return self.float32_regressor
        return self.float32


def _calibrated_linear_svc(seed: int) -> Any:
    # LinearSVC has no predict_proba; calibration gives probabilities that
    # serving, roc_auc and the fairness checks need, and skl2onnx converts it.
    return CalibratedClassifierCV(LinearSVC(random_state=seed), cv=3)


def _calibrated_svc(seed: int) -> Any:
    # SVC(probability=True) is deprecated since scikit-learn 1.9; calibration
    # is its documented replacement.
    return CalibratedClassifierCV(SVC(random_state=seed), cv=3)


REGISTRY: dict[Estimator, Entry] = {
    Estimator.LOGISTIC_REGRESSION: Entry(
        classifier=lambda s: LogisticRegression(max_iter=1000, random_state=s), regressor=None
    ),
    Estimator.LINEAR_REGRESSION: Entry(classifier=None, regressor=lambda s: LinearRegression()),
    Estimator.RIDGE: Entry(classifier=None, regressor=lambda s: Ridge(random_state=s)),
    Estimator.LASSO: Entry(classifier=None, regressor=lambda s: Lasso(random_state=s)),
    Estimator.ELASTIC_NET: Entry(classifier=None, regressor=lambda s: ElasticNet(random_state=s)),
    Estimator.LINEAR_SVM: Entry(
        classifier=_calibrated_linear_svc,
        regressor=lambda s: LinearSVR(random_state=s, max_iter=5000),
        classifier_prefix="estimator__",
    ),
    Estimator.SVM: Entry(
        classifier=_calibrated_svc,
        regressor=lambda s: SVR(),
        classifier_prefix="estimator__",
        # onnxruntime has SVMRegressor for float only.
        float32_regressor=True,
    ),
    Estimator.K_NEIGHBORS: Entry(
        classifier=lambda s: KNeighborsClassifier(), regressor=lambda s: KNeighborsRegressor()
    ),
    Estimator.NAIVE_BAYES: Entry(classifier=lambda s: GaussianNB(), regressor=None),
    Estimator.DECISION_TREE: Entry(
        classifier=lambda s: DecisionTreeClassifier(random_state=s),
        regressor=lambda s: DecisionTreeRegressor(random_state=s),
        float32=True,
    ),
    Estimator.RANDOM_FOREST: Entry(
        classifier=lambda s: RandomForestClassifier(n_estimators=50, random_state=s, n_jobs=1),
        regressor=lambda s: RandomForestRegressor(n_estimators=50, random_state=s, n_jobs=1),
        float32=True,
    ),
    Estimator.EXTRA_TREES: Entry(
        classifier=lambda s: ExtraTreesClassifier(n_estimators=50, random_state=s, n_jobs=1),
        regressor=lambda s: ExtraTreesRegressor(n_estimators=50, random_state=s, n_jobs=1),
        float32=True,
    ),
    Estimator.GRADIENT_BOOSTING: Entry(
        classifier=lambda s: GradientBoostingClassifier(random_state=s),
        regressor=lambda s: GradientBoostingRegressor(random_state=s),
        float32=True,
    ),
    Estimator.HIST_GRADIENT_BOOSTING: Entry(
        classifier=lambda s: HistGradientBoostingClassifier(random_state=s, early_stopping=False),
        regressor=lambda s: HistGradientBoostingRegressor(random_state=s, early_stopping=False),
        float32=True,
    ),
    Estimator.MLP: Entry(
        classifier=lambda s: MLPClassifier(max_iter=500, random_state=s),
        regressor=lambda s: MLPRegressor(max_iter=500, random_state=s),
    ),
}

ALLOWED = ", ".join(e.value for e in Estimator)


def lookup(name: str) -> Entry:
    """The entry for an allow-listed name; a clear error for anything else."""
    try:
        return REGISTRY[Estimator(name)]
    except ValueError:
        raise KeyError(f"unknown estimator {name!r}; allowed: {ALLOWED}") from None


def build(name: str, classification: bool, seed: int) -> tuple[Any, str]:
    """A fresh estimator and the prefix its spec parameters take.

    Raises KeyError when the name is unknown or has no class for the task.
    """
    entry = lookup(name)
    factory = entry.classifier if classification else entry.regressor
    if factory is None:
        kind = "classification" if classification else "regression"
        usable = [e.value for e, x in REGISTRY.items() if (x.classifier if classification else x.regressor)]
        raise KeyError(f"{name} cannot do {kind}; for {kind} use one of: {', '.join(usable)}")
    return factory(seed), entry.classifier_prefix if classification else ""
