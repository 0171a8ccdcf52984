"""Every gate can fail, and says why; the artifact is still written for inspection."""

from __future__ import annotations

import json
from pathlib import Path

from trainer_helpers import Run, Trainer, spec_for

GATE_FAILED = 4


def _failed(run: Run, gate: str) -> str:
    assert run.code == GATE_FAILED, run.stderr
    assert run.summary["passed"] is False and run.summary["reason"] == "GateFailed"
    gates = {g["name"]: g for g in run.summary["gates"]}
    assert gates[gate]["passed"] is False
    assert f"Failed gate {gate}" in run.stderr and gate in run.summary["message"]
    assert run.metadata()["gatesPassed"] is False
    assert run.termination is not None and json.loads(run.termination)["exitCode"] == GATE_FAILED
    message: str = gates[gate]["message"]
    return message


def test_onnx_parity_gate(train: Trainer, datasets: dict[str, Path]) -> None:
    # SVR runs in float32 in onnxruntime: close (about 1e-5 here), not within 1e-9.
    run = train(spec_for(datasets["diabetes"], "target", {"estimator": "SVM"}, gates={"maxOnnxDelta": 1e-9}))
    message = _failed(run, "onnxParity")
    assert "> maxOnnxDelta 1e-09" in message


def test_metric_floor_and_ceiling_gates(train: Trainer, datasets: dict[str, Path]) -> None:
    run = train(spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"}, gates={"thresholds": [
        {"metric": "accuracy", "min": 0.999},
        {"metric": "log_loss", "max": 1e-6},
        {"metric": "f1_macro", "min": 0.5},
    ]}))
    assert "below min 0.999" in _failed(run, "threshold:accuracy")
    assert "above max 1e-06" in _failed(run, "threshold:log_loss")
    assert {g["name"]: g["passed"] for g in run.summary["gates"]}["threshold:f1_macro"] is True


def test_threshold_on_a_metric_the_task_lacks(train: Trainer, datasets: dict[str, Path]) -> None:
    run = train(spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"},
                         gates={"thresholds": [{"metric": "r2", "min": 0.5}]}))
    assert "r2 was not measured" in _failed(run, "threshold:r2")


def test_champion_gate(train: Trainer, datasets: dict[str, Path], tmp_path: Path) -> None:
    spec = spec_for(datasets["diabetes"], "target", {"estimator": "Ridge"}, metric="rmse")
    champion = train(spec, output=tmp_path / "champion")
    assert champion.code == 0, champion.stderr
    challenger = {**spec, "championUri": f"file://{tmp_path / 'champion'}",
                  "gates": {"mustBeatChampion": True, "minImprovement": 0.5}}
    run = train(challenger)
    message = _failed(run, "champion")
    assert "does not beat it by the required 0.5" in message
    assert run.metadata()["championScore"] == champion.summary["score"]
    # Without the improvement demanded, an equal model passes.
    same = train({**challenger, "gates": {"mustBeatChampion": True}})
    assert same.code == 0, same.stderr


def test_champion_that_cannot_be_read(train: Trainer, datasets: dict[str, Path], tmp_path: Path) -> None:
    spec = spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"},
                    championUri=f"file://{tmp_path / 'nothing'}", gates={"mustBeatChampion": True})
    assert "could not score the champion" in _failed(train(spec), "champion")


def test_champion_with_tampered_model_is_refused(train: Trainer, datasets: dict[str, Path], tmp_path: Path) -> None:
    spec = spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"})
    assert train(spec, output=tmp_path / "champion").code == 0
    model = tmp_path / "champion" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    run = train({**spec, "championUri": f"file://{tmp_path / 'champion'}", "gates": {"mustBeatChampion": True}})
    assert "differs from the expected" in _failed(run, "champion")


def test_fairness_gate(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["biased"], "label", {"estimator": "LogisticRegression"},
                    dataset={"sensitiveFeature": "group", "features": ["proxy", "x"]},
                    gates={"fairness": {"maxDemographicParityDifference": 0.05,
                                        "maxEqualizedOddsDifference": 1.0}})
    message = _failed(train(spec), "fairness")
    assert message.startswith("demographic parity difference over the limit")
    assert "(max 0.05)" in message


def test_reweighing_mitigation_runs_and_reports(train: Trainer, datasets: dict[str, Path]) -> None:
    spec = spec_for(datasets["biased"], "label", {"estimator": "LogisticRegression"},
                    dataset={"sensitiveFeature": "group", "features": ["proxy", "x"]},
                    gates={"fairness": {"mitigation": "reweighing"}})
    run = train(spec)
    assert run.code == 0, run.stderr
    fairness = run.metadata()["fairness"]
    assert set(fairness["groups"]) == {"g1", "g2"}
    assert 0.0 <= fairness["demographicParityDifference"] <= 1.0
