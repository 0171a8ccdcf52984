"""Gates: table of results against Model.spec.gates."""

from __future__ import annotations

import pytest

from modelship.api.trainingjob import Fairness, GateResult, Gates, Threshold, TrainingJobStatus
from modelship.logic.gates import TrainingResult, check_gates

GOOD = TrainingResult(metrics={"accuracy": 0.93, "f1": 0.9}, metric="accuracy", score=0.93, onnx_max_delta=1e-6)


@pytest.mark.parametrize(
    ("gates", "result", "allowed", "words"),
    [
        (Gates(), GOOD, True, "All 1 gate(s) passed"),
        (Gates(), TrainingResult(onnx_max_delta=0.01), False, "onnxParity: max |sklearn - onnxruntime| 0.01 > maxOnnxDelta 0.0001"),
        (Gates(), TrainingResult(), False, "reported no ONNX"),
        (Gates(thresholds=[Threshold(metric="accuracy", min=0.9)]), GOOD, True, "passed"),
        (Gates(thresholds=[Threshold(metric="accuracy", min=0.95)]), GOOD, False, "accuracy 0.93 below min 0.95"),
        (Gates(thresholds=[Threshold(metric="accuracy", max=0.5)]), GOOD, False, "above max 0.5"),
        (Gates(thresholds=[Threshold(metric="roc_auc", min=0.5)]), GOOD, False, "roc_auc was not measured"),
        (Gates(must_beat_champion=True), GOOD, True, "passed"),  # no champion yet
        (Gates(must_beat_champion=True), TrainingResult(**{**GOOD.__dict__, "champion_score": 0.9}), True, ""),
        (Gates(must_beat_champion=True), TrainingResult(**{**GOOD.__dict__, "champion_score": 0.93}), False, "does not beat"),
        (Gates(must_beat_champion=True, min_improvement=0.05), TrainingResult(**{**GOOD.__dict__, "champion_score": 0.9}),
         False, "by at least 0.05"),
        # rmse: lower is better
        (Gates(must_beat_champion=True), TrainingResult(metric="rmse", score=1.0, onnx_max_delta=0.0, champion_score=1.2),
         True, ""),
        (Gates(must_beat_champion=True), TrainingResult(metric="rmse", score=1.3, onnx_max_delta=0.0, champion_score=1.2),
         False, "lower is better"),
        (Gates(must_beat_champion=True), TrainingResult(onnx_max_delta=0.0, champion_score=1.2), False, "no selection score"),
        (Gates(fairness=Fairness(max_demographic_parity_difference=0.1)), GOOD, False, "measured none"),
        (Gates(fairness=Fairness(max_demographic_parity_difference=0.1)),
         TrainingResult(**{**GOOD.__dict__, "gates": (GateResult(name="fairness:dp", passed=False, message="dp 0.3 > 0.1"),)}),
         False, "fairness:dp: dp 0.3 > 0.1"),
        (Gates(), TrainingResult(**{**GOOD.__dict__, "gates": (GateResult(name="custom", passed=False, message="bad"),)}),
         False, "custom: bad"),
    ],
)
def test_gates(gates: Gates, result: TrainingResult, allowed: bool, words: str) -> None:
    d = check_gates(gates, result)
    assert d.allowed is allowed, d.message
    assert d.reason == ("GatesPassed" if allowed else "GateFailed")
    assert words in d.message
    assert all(isinstance(r, GateResult) for r in d.as_results())


def test_from_status() -> None:
    status = TrainingJobStatus(metrics={"accuracy": 0.9}, metric="accuracy", score=0.9, onnx_max_delta=1e-7)
    r = TrainingResult.from_status(status, champion_score=0.8)
    assert r.champion_score == 0.8 and r.metrics == {"accuracy": 0.9}
    assert check_gates(Gates(must_beat_champion=True), r).allowed
