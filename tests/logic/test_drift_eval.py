"""DriftMonitor evaluation and status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus, DriftState
from modelship.api.model import Retrain
from modelship.logic import conditions as c
from modelship.logic.drift import (
    drift_retrain_decision,
    drift_status,
    evaluate_drift,
    state_changed,
    unknown_features,
    watched_features,
)
from modelship.logic.retrain import RetrainDecision
from modelship_runtime.artifacts.metadata import (
    PREDICTION,
    CategoricalReference,
    DriftReference,
    NumericReference,
)
from modelship_runtime.drift import stats

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REF = DriftReference(
    features={
        "x": NumericReference(edges=[-1.0, 0.0, 1.0], proportions=[0.25, 0.25, 0.25, 0.25]),
        "y": NumericReference(edges=[0.0], proportions=[0.5, 0.5]),
        "color": CategoricalReference(categories=["red", "blue"], proportions=[0.6, 0.4, 0.0]),
    },
    prediction=CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.5, 0.0]),
    rows=1000,
)
SAME = {"x": [250, 250, 250, 250], "y": [500, 500], "color": [600, 400, 0], PREDICTION: [500, 500, 0]}
SHIFTED = {"x": [100, 150, 300, 450], "y": [500, 500], "color": [600, 400, 0], PREDICTION: [300, 700, 0]}


def _spec(**kw: object) -> DriftMonitorSpec:
    return DriftMonitorSpec.model_validate({"modelRef": {"name": "iris"}, "window": {"minSamples": 100}, **kw})


def test_watched_and_unknown_features() -> None:
    assert watched_features(_spec(), REF) == ["x", "y", "color", PREDICTION]
    assert watched_features(_spec(features=["y", "nope"], predictionDrift=False), REF) == ["y"]
    assert unknown_features(_spec(features=["y", "nope"]), REF) == ["nope"]


def test_no_drift_on_the_reference_itself() -> None:
    e = evaluate_drift(_spec(), REF, SAME)
    assert e.state == DriftState.STABLE and e.samples == 1000
    assert all(s.score == 0 for s in e.scores) and e.drifted == []
    assert "Stable" in e.message


def test_psi_drift_matches_the_statistic_and_sorts_by_score() -> None:
    e = evaluate_drift(_spec(), REF, SHIFTED)
    expected_x = stats.psi(REF.features["x"].proportions, SHIFTED["x"])[0]
    by_name = {s.feature: s for s in e.scores}
    assert by_name["x"].score == pytest.approx(expected_x, abs=1e-6)
    assert [s.score for s in e.scores] == sorted((s.score for s in e.scores), reverse=True)
    assert e.state == DriftState.DRIFT and "x" in e.drifted
    assert e.max_score == e.scores[0].score


def test_prediction_alone_does_not_make_drift() -> None:
    only_prediction = {**SAME, PREDICTION: [200, 800, 0]}
    e = evaluate_drift(_spec(), REF, only_prediction)
    assert PREDICTION in e.drifted and e.state == DriftState.STABLE


@pytest.mark.parametrize(("method", "state"), [("js", DriftState.DRIFT), ("chi2", DriftState.DRIFT), ("psi", DriftState.DRIFT)])
def test_methods(method: str, state: DriftState) -> None:
    e = evaluate_drift(_spec(method=method, threshold=0.15, warningThreshold=0.05), REF, SHIFTED)
    assert e.state == state, e.message
    x = next(s for s in e.scores if s.feature == "x")
    if method == "chi2":
        assert x.p_value is not None and x.p_value < 1e-10
    else:
        assert x.p_value is None


def test_too_few_samples_gives_no_verdict() -> None:
    e = evaluate_drift(_spec(window={"minSamples": 5000}), REF, SHIFTED)
    assert e.state is None and e.scores == () and "fewer than minSamples 5000" in e.message


def test_missing_and_wrongly_sized_features() -> None:
    e = evaluate_drift(_spec(), REF, {"x": SAME["x"], "y": [1, 2, 3]})
    assert set(e.missing) == {"y", "color", PREDICTION}
    e = evaluate_drift(_spec(), REF, {})
    assert e.state is None and "none of the watched features" in e.message
    e = evaluate_drift(_spec(), REF, {**SAME, "y": [0, 0]})  # all missing values: no score
    assert "y" in e.missing and "y" not in {s.feature for s in e.scores}


def test_status_records_state_scores_and_conditions() -> None:
    spec = _spec(topN=2)
    e = evaluate_drift(spec, REF, SHIFTED)
    s1 = drift_status(spec, DriftMonitorStatus(), e, NOW, generation=3, reference_revision="iris-abc")
    assert s1.state == DriftState.DRIFT and len(s1.scores) == 2 and s1.samples == 1000
    assert s1.last_evaluated == "2026-11-23T12:00:00Z" and s1.observed_generation == 3
    assert c.is_true(s1.conditions, c.DRIFTED) and c.is_true(s1.conditions, c.READY)
    assert state_changed(DriftMonitorStatus(), s1)
    # Same evaluation later: only lastEvaluated moves; no state change, transition times kept.
    s2 = drift_status(spec, s1, e, NOW + timedelta(minutes=1), generation=3, reference_revision="iris-abc")
    assert not state_changed(s1, s2)
    assert s2.model_copy(update={"last_evaluated": s1.last_evaluated}) == s1
    # Too few samples: state kept, Ready says why.
    few = evaluate_drift(_spec(window={"minSamples": 10**6}), REF, SAME)
    s3 = drift_status(spec, s2, few, NOW + timedelta(minutes=2), generation=3, reference_revision="iris-abc")
    assert s3.state == DriftState.DRIFT and c.get_condition(s3.conditions, c.READY).reason == "NotEnoughSamples"


def test_status_trigger_bookkeeping_and_refusal_message() -> None:
    spec = _spec()
    e = evaluate_drift(spec, REF, SHIFTED)
    old = DriftMonitorStatus(triggered_at=["2026-11-22T10:00:00Z", "2026-11-23T09:00:00Z"])
    s = drift_status(spec, old, e, NOW, generation=1, reference_revision="r", triggered_job="iris-4")
    assert s.triggered_at == ["2026-11-23T09:00:00Z", "2026-11-23T12:00:00Z"]
    assert s.last_triggered_training_job == "iris-4"
    assert "created TrainingJob iris-4" in c.get_condition(s.conditions, c.DRIFTED).message
    refused = RetrainDecision(False, "CoolingDown", "the cooldown ends at X")
    s = drift_status(spec, old, e, NOW, generation=1, reference_revision="r", retrain=refused)
    assert "no retrain: the cooldown ends at X" in c.get_condition(s.conditions, c.DRIFTED).message


def test_status_new_reference_resets_scores_and_problem_keeps_them() -> None:
    spec = _spec()
    s1 = drift_status(spec, DriftMonitorStatus(), evaluate_drift(spec, REF, SHIFTED), NOW, generation=1,
                      reference_revision="old")
    s2 = drift_status(spec, s1, None, NOW, generation=1, reference_revision="old",
                      problem=("ScrapeFailed", "no pod answered"))
    assert s2.state == DriftState.DRIFT and s2.scores == s1.scores
    ready = c.get_condition(s2.conditions, c.READY)
    assert ready is not None and ready.status == "False" and ready.reason == "ScrapeFailed"
    s3 = drift_status(spec, s1, None, NOW, generation=1, reference_revision="new", problem=("X", "y"))
    assert s3.scores == [] and s3.state is None and s3.reference_revision == "new"


@pytest.mark.parametrize(
    ("action", "model", "alert", "allowed", "reason"),
    [
        ({}, None, False, True, "Allowed"),
        ({"requireAlert": True}, None, False, False, "AwaitingAlert"),
        ({"requireAlert": True}, None, True, True, "Allowed"),
        ({"retrain": False}, None, False, False, "Disabled"),
        ({}, Retrain(on_drift=False), False, False, "Disabled"),
        ({"cooldown": "1m"}, Retrain(cooldown="3h"), False, False, "CoolingDown"),
        ({"cooldown": "1m"}, None, False, True, "Allowed"),
    ],
)
def test_drift_retrain_decision(action: dict[str, object], model: Retrain | None, alert: bool, allowed: bool, reason: str) -> None:
    spec = _spec(action=action)
    status = DriftMonitorStatus(triggered_at=[c.rfc3339(NOW - timedelta(hours=2))])
    d = drift_retrain_decision(spec, model, status, NOW, running=None, alert_firing=alert)
    assert (d.allowed, d.reason) == (allowed, reason), d.message
    assert not drift_retrain_decision(spec, model, status, NOW, running="iris-3", alert_firing=True).allowed


@pytest.mark.parametrize(
    ("model", "model_triggered", "allowed", "reason"),
    [
        # Another monitor of the same Model retrained 10 minutes ago: the Model's cooldown holds.
        (Retrain(cooldown="1h"), [NOW - timedelta(minutes=10)], False, "CoolingDown"),
        (Retrain(cooldown="1h"), [c.rfc3339(NOW - timedelta(hours=2))], True, "Allowed"),
        (Retrain(cooldown="1m", max_per_day=2), [NOW - timedelta(hours=3), NOW - timedelta(hours=5)], False,
         "DailyLimit"),
        (Retrain(cooldown="1h"), [], True, "Allowed"),
        (None, [NOW - timedelta(minutes=10)], True, "Allowed"),  # no Model limits to apply
    ],
)
def test_the_models_limits_count_every_monitors_retrains(
        model: Retrain | None, model_triggered: list[datetime | str], allowed: bool, reason: str) -> None:
    spec = _spec(action={"cooldown": "1m"})
    d = drift_retrain_decision(spec, model, DriftMonitorStatus(), NOW, running=None, alert_firing=False,
                               model_triggered=model_triggered)
    assert (d.allowed, d.reason) == (allowed, reason), d.message
    if not allowed:
        assert "any monitor" in d.message


def test_counts_as_numpy_arrays() -> None:
    e = evaluate_drift(_spec(), REF, {k: np.asarray(v) for k, v in SHIFTED.items()})
    assert e.state == DriftState.DRIFT
