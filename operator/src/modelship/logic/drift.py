"""A DriftMonitor's evaluation: live counts + training reference → scores, state, status.

The I/O layer scrapes the stable revision's pods (``logic.scrape.drift_counts``),
takes the window's counts (``modelship_runtime.drift.window``), reads the
reference from the artifact's metadata.json, and calls :func:`evaluate_drift`
and :func:`drift_status`. Below ``window.minSamples`` there is no verdict:
the state stays what it was and a condition says how many samples there are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from modelship.api.common import parse_duration
from modelship.api.driftmonitor import (
    Action,
    DriftMonitorSpec,
    DriftMonitorStatus,
    DriftState,
    FeatureScore,
    Method,
)
from modelship.api.model import Retrain
from modelship.logic import conditions as c
from modelship.logic.conditions import Reason
from modelship.logic.retrain import RetrainDecision, may_retrain
from modelship_runtime.artifacts.metadata import (
    PREDICTION,
    CategoricalReference,
    DriftReference,
    NumericReference,
)
from modelship_runtime.drift import stats

_STATE_NAMES = {stats.State.STABLE: DriftState.STABLE, stats.State.WARNING: DriftState.WARNING,
                stats.State.DRIFT: DriftState.DRIFT}
_STATE_VALUES = {name: int(value) for value, name in _STATE_NAMES.items()}


def state_value(state: DriftState | str) -> int:
    """A verdict as the value of ``modelship_drift_state`` (``stats.State``: 0 Stable, 1 Warning, 2 Drift)."""
    return _STATE_VALUES[DriftState(state)]


@dataclass(frozen=True)
class DriftEvaluation:
    """One evaluation. ``state`` is ``None`` when there were too few samples for a verdict."""

    samples: int
    scores: tuple[FeatureScore, ...]  # every evaluated feature, highest score first
    state: DriftState | None
    message: str
    missing: tuple[str, ...] = ()  # features the pods did not report

    @property
    def drifted(self) -> list[str]:
        return [s.feature for s in self.scores if s.state == DriftState.DRIFT]

    @property
    def max_score(self) -> float | None:
        return max((s.score for s in self.scores), default=None)


def reference_bins(reference: DriftReference) -> dict[str, NumericReference | CategoricalReference]:
    """The reference's bins per watchable name: its features, and the prediction when it has one."""
    refs = dict(reference.features)
    if reference.prediction is not None:
        refs[PREDICTION] = reference.prediction
    return refs


def watched_features(spec: DriftMonitorSpec, reference: DriftReference) -> list[str]:
    """The features to score: the spec's list (or every referenced one), plus the prediction."""
    names = list(spec.features) if spec.features else list(reference.features)
    names = [n for n in names if n in reference.features]
    if spec.prediction_drift and reference.prediction is not None:
        names.append(PREDICTION)
    return names


def unknown_features(spec: DriftMonitorSpec, reference: DriftReference) -> list[str]:
    """Features the spec names that the model's reference does not have (an InvalidSpec message)."""
    return [n for n in spec.features or [] if n not in reference.features]


Rows = list[npt.NDArray[np.float64]]


def _paired(spec: DriftMonitorSpec, reference: DriftReference, counts: Mapping[str, npt.ArrayLike],
            ) -> tuple[list[str], list[str], Rows, Rows]:
    """The watched features with live counts on their reference's bins (names, reference
    proportions, live counts), and those without (missing)."""
    refs = reference_bins(reference)
    names: list[str] = []
    missing: list[str] = []
    ref_rows: Rows = []
    cur_rows: Rows = []
    for name in watched_features(spec, reference):
        live = counts.get(name)
        ref = np.asarray(refs[name].proportions, dtype=np.float64)
        if live is None or np.asarray(live).size != ref.size:
            missing.append(name)
            continue
        names.append(name)
        ref_rows.append(ref)
        cur_rows.append(np.asarray(live, dtype=np.float64))
    return names, missing, ref_rows, cur_rows


def _scored(spec: DriftMonitorSpec, ref_rows: Rows, cur_rows: Rows,
            ) -> tuple[stats.Array, npt.NDArray[np.int64], list[float | None]]:
    """Each feature's score, state and (chi2) adjusted p-value by ``spec.method``."""
    ref_m, mask = stats.stack(ref_rows)
    cur_m, _ = stats.stack(cur_rows)
    if spec.method == Method.CHI2:
        result = stats.chi_square(ref_m, cur_m, mask)
        states = stats.chi_square_states(result, spec.threshold, spec.warning_threshold)
        return result.effect_size, states, [None if math.isnan(p) else float(p) for p in result.p_adjusted]
    scores = stats.js_distance(ref_m, cur_m, mask) if spec.method == Method.JS else stats.psi(ref_m, cur_m, mask)
    return scores, stats.states(scores, spec.threshold, spec.warning_threshold), [None] * len(ref_rows)


def evaluate_drift(spec: DriftMonitorSpec, reference: DriftReference,
                   counts: Mapping[str, npt.ArrayLike]) -> DriftEvaluation:
    """Score every watched feature with ``spec.method`` and decide the state.

    ``counts``: live counts over the window per feature, on the reference's
    bins (``len(edges) + 1`` or ``len(categories) + 1`` values). Samples are
    the largest count total among the features (missing values are not
    binned, so totals can differ a little).
    """
    names, missing, ref_rows, cur_rows = _paired(spec, reference, counts)
    samples = int(max((float(r.sum()) for r in cur_rows), default=0.0))
    if not names:
        return DriftEvaluation(0, (), None, "the serving pods report none of the watched features", tuple(missing))
    if samples < spec.window.min_samples:
        return DriftEvaluation(
            samples, (), None,
            f"{samples} samples in the window, fewer than minSamples {spec.window.min_samples}: no verdict yet",
            tuple(missing),
        )
    scores, states, p_values = _scored(spec, ref_rows, cur_rows)
    # A feature whose values were all missing in the window has no score (NaN): reported as missing.
    missing += [n for n, s in zip(names, scores, strict=True) if math.isnan(s)]
    feature_scores = sorted(
        (
            FeatureScore(feature=n, score=round(float(s), 6), state=_STATE_NAMES[stats.State(int(st))], p_value=p)
            for n, s, st, p in zip(names, scores, states, p_values, strict=True)
            if not math.isnan(s)
        ),
        key=lambda f: (-f.score, f.feature),
    )
    # The prediction shows model behaviour, not inputs: it does not count towards minDriftedFeatures.
    input_states = [int(st) for n, st in zip(names, states, strict=True) if n != PREDICTION]
    overall = _STATE_NAMES[stats.overall_state(input_states, spec.min_drifted_features)]
    drifted = [f.feature for f in feature_scores if f.state == DriftState.DRIFT]
    highest = f"; highest {feature_scores[0].feature} {feature_scores[0].score:.4g}" if feature_scores else ""
    message = (
        f"{overall}: {len(drifted)} feature(s) at or above {spec.threshold:g} ({spec.method})"
        + (f": {', '.join(drifted[:5])}" if drifted else "")
        + f"{highest}; {samples} samples"
    )
    return DriftEvaluation(samples, tuple(feature_scores), overall, message, tuple(missing))


def retrain_within_limits(now: datetime, action: Action, model_retrain: Retrain | None, *,
                          triggered: Sequence[datetime | str], model_triggered: Sequence[datetime | str],
                          model_limits: str, running: str | None, enabled: bool, rolling_out: str | None,
                          alert_firing: bool | None = None) -> RetrainDecision:
    """May a monitor's verdict (drift or live quality) start a retrain now?

    The stricter of monitor and Model limits on this monitor's own retrains
    (``triggered``); then the Model's limits on ``model_triggered``, the times
    of its automatic retrains from any monitor (TrainingJobs with trigger drift
    or performance), so two monitors of one Model do not retrain it twice
    within its cooldown. ``model_limits`` names those in a refusal.
    """
    cooldown, max_per_day = parse_duration(action.cooldown), action.max_per_day
    if model_retrain is not None:
        cooldown = max(cooldown, parse_duration(model_retrain.cooldown))
        max_per_day = min(max_per_day, model_retrain.max_per_day)
    own = may_retrain(now, cooldown=cooldown, max_per_day=max_per_day, triggered=triggered, running=running,
                      enabled=enabled, alert_firing=alert_firing, rolling_out=rolling_out)
    if not own.allowed or model_retrain is None or not model_triggered:
        return own
    model_wide = may_retrain(now, cooldown=parse_duration(model_retrain.cooldown),
                             max_per_day=model_retrain.max_per_day, triggered=model_triggered)
    if model_wide.allowed:
        return own
    return RetrainDecision(False, model_wide.reason, f"{model_limits}: {model_wide.message}", model_wide.retry_at)


def drift_retrain_decision(spec: DriftMonitorSpec, model_retrain: Retrain | None, status: DriftMonitorStatus,
                           now: datetime, *, running: str | None, alert_firing: bool,
                           model_triggered: Sequence[datetime | str] = (), rolling_out: str | None = None,
                           ) -> RetrainDecision:
    """May this monitor's Drift state start a retrain now? (:func:`retrain_within_limits`, with the
    Model's ``onDrift`` and the monitor's ``requireAlert``)."""
    return retrain_within_limits(
        now, spec.action, model_retrain, triggered=status.triggered_at, model_triggered=model_triggered,
        model_limits="the Model's drift retrains (any monitor)", running=running, rolling_out=rolling_out,
        enabled=spec.action.retrain and (model_retrain is None or model_retrain.on_drift),
        alert_firing=alert_firing if spec.action.require_alert else None)


def drift_status(spec: DriftMonitorSpec, old: DriftMonitorStatus, evaluation: DriftEvaluation | None, now: datetime,
                 *, generation: int | None, reference_revision: str | None, problem: tuple[str, str] | None = None,
                 triggered_job: str | None = None, retrain: RetrainDecision | None = None) -> DriftMonitorStatus:
    """The whole new status.

    ``evaluation`` ``None`` with ``problem`` (reason, message): nothing could
    be evaluated (model missing, no reference, scrape failed): Ready=False,
    scores and state kept. ``triggered_job``: the TrainingJob just created for
    drift (recorded with the time, for cooldown and the daily limit).
    ``retrain``: the latest retrain decision, whose refusal is shown in the
    Drifted condition's message.
    """
    update: dict[str, Any] = {"observed_generation": generation}
    if reference_revision is not None and reference_revision != old.reference_revision:
        # A new model: its reference replaces the old one, and so do its scores.
        update.update(reference_revision=reference_revision, scores=[], max_score=None, state=None)
    base = old.model_copy(update=update)
    conds: list[Any] = []
    if evaluation is None:
        reason, message = problem or (Reason.SCRAPE_FAILED, "no evaluation was possible")
        conds.append(c.condition(c.READY, False, reason, message, generation=generation))
        return base.model_copy(update={"conditions": c.merge_conditions(base.conditions, conds, now)})

    update = {"last_evaluated": c.rfc3339(now), "samples": evaluation.samples}
    if evaluation.state is None:
        conds.append(c.condition(c.READY, True, Reason.NOT_ENOUGH_SAMPLES, evaluation.message, generation=generation))
    else:
        update.update(
            state=evaluation.state,
            scores=list(evaluation.scores[: spec.top_n]),
            max_score=evaluation.max_score,
        )
        conds.append(c.condition(c.READY, True, Reason.NO_DRIFT if evaluation.state == DriftState.STABLE
                                 else Reason.DRIFT_DETECTED, evaluation.message, generation=generation))
    state = update.get("state", base.state)
    triggered = [t for t in base.triggered_at if (now - (c.parse_time(t) or now)).total_seconds() < 86400]
    if triggered_job is not None:
        update.update(last_triggered_training_job=triggered_job, last_triggered_at=c.rfc3339(now))
        triggered.append(c.rfc3339(now))
    update["triggered_at"] = triggered
    if state == DriftState.DRIFT:
        detail = evaluation.message if evaluation.state is not None else f"last verdict Drift; {evaluation.message}"
        if triggered_job is not None:
            detail += f"; created TrainingJob {triggered_job}"
        elif retrain is not None and not retrain.allowed:
            detail += f"; no retrain: {retrain.message}"
        conds.append(c.condition(c.DRIFTED, True, Reason.DRIFT_DETECTED, detail, generation=generation))
    elif state is not None:
        reason = Reason.WARNING if state == DriftState.WARNING else Reason.NO_DRIFT
        conds.append(c.condition(c.DRIFTED, False, reason, evaluation.message, generation=generation))
    new = base.model_copy(update=update)
    return new.model_copy(update={"conditions": c.merge_conditions(new.conditions, conds, now)})


def state_changed(old: DriftMonitorStatus, new: DriftMonitorStatus) -> bool:
    """Whether to emit an Event: the state moved (a first verdict counts)."""
    return new.state is not None and new.state != old.state
