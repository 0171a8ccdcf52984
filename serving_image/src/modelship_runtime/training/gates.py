"""The checks a model must pass before it may reach traffic.

Each gate yields ``{name, passed, message}``; the message states the measured
value against its limit so a failed run says why without opening logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelship.api.trainingjob import Gates, Threshold
from modelship_runtime.artifacts import store
from modelship_runtime.training import convert
from modelship_runtime.training import metrics as holdout_metrics
from modelship_runtime.training.fairness import FairnessReport


@dataclass
class GateResult:
    name: str
    passed: bool
    message: str

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


def onnx_parity(parity: convert.Parity, limit: float, rows: int) -> GateResult:
    ok = parity.max_delta <= limit and parity.mismatches == 0
    message = (
        f"max |sklearn - onnxruntime| {parity.max_delta:.3g} {'<=' if parity.max_delta <= limit else '>'} "
        f"maxOnnxDelta {limit:g}; labels agree on {parity.label_agreement:.2%} of {rows} holdout rows"
    )
    if parity.mismatches:
        message += f" ({parity.mismatches} differ)"
    return GateResult("onnxParity", ok, message)


def threshold(rule: Threshold, values: dict[str, float]) -> GateResult:
    passed, message = rule.check(values)
    return GateResult(f"threshold:{rule.metric}", passed, message)


def champion(
    gates: Gates,
    champion_uri: str | None,
    metric: str,
    new_score: float | None,
    holdout: pd.DataFrame,
    y: pd.Series,
    classes: list[object] | None,
) -> tuple[GateResult | None, float | None]:
    """Score the serving model on the same holdout; gate when mustBeatChampion."""
    if champion_uri is None:
        if gates.must_beat_champion:
            return GateResult("champion", True, "no champion artifact given: nothing to beat (first model)"), None
        return None, None
    if new_score is None:
        if gates.must_beat_champion:
            return GateResult("champion", False, f"{metric} could not be computed on the holdout, so no comparison"), None
        return None, None
    try:
        meta = store.read_metadata(champion_uri)
        sess = convert.session(store.read_model(champion_uri))
        missing = [f.name for f in meta.features if f.name not in holdout.columns]
        if missing:
            raise ValueError(f"the data lacks the champion's features {missing}")
        pred = convert.predict(sess, convert.feeds(holdout, meta.features, meta.input_mode, meta.tensor_input), meta.outputs)
        scores = (
            holdout_metrics.classification(y, pred, classes)
            if classes is not None
            else holdout_metrics.regression(y, pred)
        )
        old = scores[metric]
    except (store.ArtifactError, ValueError, KeyError, RuntimeError) as exc:
        if gates.must_beat_champion:
            return GateResult("champion", False, f"could not score the champion {champion_uri}: {exc}"), None
        return None, None
    wins = holdout_metrics.better(metric, new_score, old, gates.min_improvement)
    message = (
        f"{metric} {new_score:.4g} vs champion {old:.4g} "
        f"({'beats' if wins else 'does not beat'} it by the required {gates.min_improvement:g})"
    )
    if not gates.must_beat_champion:
        return GateResult("champion", True, message + "; mustBeatChampion is off"), old
    return GateResult("champion", wins, message), old


def fairness(gates: Gates, report: FairnessReport) -> GateResult:
    limits = gates.fairness
    assert limits is not None
    problems, parts = [], []
    dp, eo = report.demographic_parity_difference, report.equalized_odds_difference
    parts.append(f"demographic parity difference {dp:.3f}")
    if limits.max_demographic_parity_difference is not None:
        parts[-1] += f" (max {limits.max_demographic_parity_difference:g})"
        if dp > limits.max_demographic_parity_difference:
            problems.append("demographic parity difference")
    parts.append(f"equalized odds difference {eo:.3f}")
    if limits.max_equalized_odds_difference is not None:
        parts[-1] += f" (max {limits.max_equalized_odds_difference:g})"
        if eo > limits.max_equalized_odds_difference:
            problems.append("equalized odds difference")
    message = "; ".join(parts)
    if problems:
        message = f"{' and '.join(problems)} over the limit: " + message
    return GateResult("fairness", not problems, message)
