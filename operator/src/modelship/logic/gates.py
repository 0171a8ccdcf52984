"""Gates: may a trained version reach traffic? Decided from the TrainingJob's results.

The trainer checks the gates of its own spec and reports them; the Model's
``spec.gates`` are checked again here, because a Model's gates may have
changed since the TrainingJob was made and a TrainingJob made by hand may
carry none. Anything a gate needs but the results do not say is a failure:
an unmeasured gate never passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelship.api.trainingjob import LOWER_IS_BETTER, GateResult, Gates, Metric, TrainingJobStatus
from modelship.logic.conditions import Reason


@dataclass(frozen=True)
class TrainingResult:
    """What a finished training run reports (TrainingJob status, plus the champion's score)."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    metric: str | None = None  # the selection metric
    score: float | None = None  # its holdout value
    onnx_max_delta: float | None = None
    gates: Sequence[GateResult] = ()  # the trainer's own checks
    champion_score: float | None = None  # the serving model on the same holdout; None: no champion

    @classmethod
    def from_status(cls, status: TrainingJobStatus, champion_score: float | None = None) -> TrainingResult:
        return cls(
            dict(status.metrics), status.metric, status.score, status.onnx_max_delta,
            tuple(status.gates), champion_score,
        )


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str  # GatesPassed or GateFailed
    message: str
    checks: tuple[GateCheck, ...]

    def as_results(self) -> list[GateResult]:
        return [GateResult(name=c.name, passed=c.passed, message=c.message) for c in self.checks]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _lower_is_better(metric: str) -> bool:
    return metric in {m.value for m in LOWER_IS_BETTER}


def check_gates(gates: Gates, result: TrainingResult) -> GateDecision:
    """Every gate of ``gates`` against ``result``; allowed only when all pass."""
    checks: list[GateCheck] = []

    if result.onnx_max_delta is None:
        checks.append(GateCheck("onnxParity", False, "the trainer reported no ONNX-vs-sklearn difference"))
    else:
        ok = result.onnx_max_delta <= gates.max_onnx_delta
        checks.append(GateCheck(
            "onnxParity", ok,
            f"max |sklearn - onnxruntime| {_fmt(result.onnx_max_delta)} "
            f"{'<=' if ok else '>'} maxOnnxDelta {_fmt(gates.max_onnx_delta)}",
        ))

    for t in gates.thresholds:
        passed, message = t.check(result.metrics)
        checks.append(GateCheck(f"threshold:{t.metric}", passed, message))

    if gates.must_beat_champion:
        checks.append(_champion(gates, result))

    if gates.fairness is not None:
        reported = [g for g in result.gates if g.name.startswith("fairness")]
        if not reported:
            checks.append(GateCheck("fairness", False, "fairness limits are set but the trainer measured none"))
        checks.extend(GateCheck(g.name, g.passed, g.message) for g in reported)

    # The trainer's own failed checks count too (e.g. gates of a hand-made TrainingJob).
    seen = {c.name for c in checks}
    checks.extend(GateCheck(g.name, g.passed, g.message) for g in result.gates if not g.passed and g.name not in seen)

    failed = [c for c in checks if not c.passed]
    if failed:
        return GateDecision(False, Reason.GATE_FAILED,
                            "Refused: " + "; ".join(f"{c.name}: {c.message}" for c in failed), tuple(checks))
    return GateDecision(True, Reason.GATES_PASSED, f"All {len(checks)} gate(s) passed", tuple(checks))


def _champion(gates: Gates, result: TrainingResult) -> GateCheck:
    if result.champion_score is None:
        return GateCheck("champion", True, "no champion serves yet")
    if result.score is None or result.metric is None:
        return GateCheck("champion", False, "the trainer reported no selection score to compare")
    lower = _lower_is_better(result.metric)
    gain = (result.champion_score - result.score) if lower else (result.score - result.champion_score)
    # "Beat" is strict: a tie keeps the champion serving.
    ok = gain >= gates.min_improvement if gates.min_improvement > 0 else gain > 0
    verb = "beats" if ok else "does not beat"
    margin = f" by at least {_fmt(gates.min_improvement)}" if gates.min_improvement > 0 else ""
    return GateCheck(
        "champion", ok,
        f"{result.metric} {_fmt(result.score)} {verb} the champion's {_fmt(result.champion_score)}"
        f"{margin} ({'lower' if lower else 'higher'} is better)",
    )


__all__ = ["GateCheck", "GateDecision", "Metric", "TrainingResult", "check_gates"]
