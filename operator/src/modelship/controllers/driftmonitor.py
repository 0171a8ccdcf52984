"""DriftMonitor controller: live histograms of the stable revision → scores → retrain.

Every ``interval`` it scrapes the stable revision's pods, keeps their
cumulative per-bin counts as snapshots (in memory: after an operator restart
the first window counts everything since each pod started), takes the counts
over ``window`` (``modelship_runtime.drift.window``), scores them against the
artifact's reference (``logic.drift``), and on confirmed drift creates one
TrainingJob (trigger ``drift``) for the Model, within cooldown and the daily
limit. The Model then takes the new version through gates and canary.

With ``source: prometheus`` it asks Prometheus instead (one instant query of
``increase()`` over the window, ``logic.prometheus``) and keeps no snapshots:
Prometheus has the history, so an operator restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelship.api.common import parse_duration
from modelship.api.driftmonitor import (
    DriftMonitorSpec,
    DriftMonitorStatus,
    DriftState,
    Method,
    SourceType,
)
from modelship.api.model import ModelSpec, ModelStatus
from modelship.api.trainingjob import TrainingPhase, Trigger
from modelship.builders.common import MODEL_LABEL, REVISION_LABEL
from modelship.builders.model_training import build_training_job_resource
from modelship.builders.monitoring import build_prometheus_rule
from modelship.controllers import alerts, groundtruth
from modelship.controllers.metrics import API_WRITES, DRIFT_SCORE, DRIFT_STATE
from modelship.controllers.runtime import Context
from modelship.k8s import events
from modelship.k8s.prometheus import instant_query
from modelship.k8s.scrape import fetch, ready_pods, scrape
from modelship.k8s.status import write_status
from modelship.logic.conditions import Reason, parse_time
from modelship.logic.drift import (
    drift_retrain_decision,
    drift_status,
    evaluate_drift,
    state_changed,
)
from modelship.logic.prometheus import (
    NoSeries,
    PrometheusError,
    counts_query,
    no_series_message,
    window_counts_from_vector,
)
from modelship.logic.retrain import is_firing
from modelship.logic.revision import training_job_name, training_job_number
from modelship.logic.scrape import drift_counts, parse_samples
from modelship_runtime.artifacts.metadata import (
    PREDICTION,
    CategoricalReference,
    DriftReference,
    Metadata,
    NumericReference,
)
from modelship_runtime.drift.window import Snapshot, pick_baseline, prune, window_counts

log = logging.getLogger(__name__)
Body = dict[str, Any]
PROMETHEUS_RULES_API = "monitoring.coreos.com/v1"
_STATE_VALUE = {DriftState.STABLE: 0, DriftState.WARNING: 1, DriftState.DRIFT: 2}

# In-memory state per monitor: snapshots of (time, feature → pod → counts), and metadata per artifact.
_SNAPSHOTS: dict[tuple[str, str], tuple[str, list[tuple[datetime, Snapshot]]]] = {}
_METADATA: dict[str, Metadata] = {}
_GUARD = threading.Lock()


def reference_for(pods: list[Body], model: str, uri: str, sha256: str | None, timeout: float) -> Metadata:
    """The artifact's metadata (its drift reference), read once per artifact from a serving pod
    (``GET /v2/models/<model>/artifact``): the operator never needs the artifact store's
    credentials or volume. The pod's copy must be the recorded artifact (same sha256)."""
    with _GUARD:
        cached = _METADATA.get(uri)
    if cached is not None:
        return cached
    problems = []
    for pod in ready_pods(pods):
        text = fetch(pod, timeout, path=f"/v2/models/{model}/artifact")
        if text is None:
            problems.append(f"{pod['metadata']['name']} did not answer")
            continue
        metadata = Metadata.model_validate_json(text)
        if sha256 and metadata.model_sha256 != sha256:
            raise ValueError(f"pod {pod['metadata']['name']} serves model.onnx {metadata.model_sha256[:12]}, "
                             f"not the recorded {sha256[:12]}")
        with _GUARD:
            _METADATA[uri] = metadata
        return metadata
    raise LookupError("no serving pod answered" + (f" ({'; '.join(problems)})" if problems else ""))


def due(spec: DriftMonitorSpec, status: DriftMonitorStatus, generation: int | None, now: datetime) -> bool:
    last = parse_time(status.last_evaluated)
    if last is None or status.observed_generation != generation:
        return True
    return (now - last) >= parse_duration(spec.interval)


def live_counts(texts: Mapping[str, str], reference: DriftReference) -> dict[str, dict[str, np.ndarray]]:
    """feature → pod → cumulative counts per reference bin."""
    refs = reference_bins(reference)
    out: dict[str, dict[str, np.ndarray]] = {}
    for pod, text in texts.items():
        try:
            per_feature = drift_counts(parse_samples(text), refs)
        except ValueError as exc:
            log.info("Pod %s served unreadable metrics: %s", pod, exc)
            continue
        for feature, counts in per_feature.items():
            out.setdefault(feature, {})[pod] = counts
    return out


def windowed(key: tuple[str, str], revision: str, current: dict[str, dict[str, np.ndarray]], now: datetime,
             window: Any) -> dict[str, np.ndarray]:
    """Counts over the window per feature, from this snapshot and the kept ones.

    A kept snapshot is flat: ``feature/pod`` → cumulative counts.
    """
    flat: dict[str, npt.ArrayLike] = {f"{f}/{pod}": c for f, pods in current.items() for pod, c in pods.items()}
    with _GUARD:
        kept_revision, snapshots = _SNAPSHOTS.get(key, (revision, []))
        if kept_revision != revision:
            snapshots = []  # a new model: its reference and its pods are new
        base = pick_baseline(snapshots, now, window)
        snapshots = prune([*snapshots, (now, flat)], now, window)
        _SNAPSHOTS[key] = (revision, snapshots)
    old = base[1] if base is not None else {}
    out = {}
    for feature, pods in current.items():
        before = {k.rsplit("/", 1)[1]: v for k, v in old.items() if k.rsplit("/", 1)[0] == feature}
        out[feature] = window_counts(before if base is not None else None, pods).counts
    return out


def prometheus_counts(ctx: Context, spec: DriftMonitorSpec, namespace: str, revision: str,
                      reference: DriftReference) -> dict[str, np.ndarray]:
    """Counts over the window per feature, summed over the revision's pods, from Prometheus."""
    url = spec.source.prometheus_url
    if not url:  # the CRD's CEL rule refuses this; a spec applied without the schema may not
        raise PrometheusError("source type prometheus needs source.prometheusUrl")
    query = counts_query(namespace, revision, parse_duration(spec.window.duration))
    payload = instant_query(url, query, ctx.settings.prometheus_timeout_seconds,
                            ctx.settings.prometheus_bearer_token_file)
    return window_counts_from_vector(payload, reference_bins(reference))


def reference_bins(reference: DriftReference) -> dict[str, NumericReference | CategoricalReference]:
    refs = dict(reference.features)
    if reference.prediction is not None:
        refs[PREDICTION] = reference.prediction
    return refs


def forget(namespace: str, name: str) -> None:
    with _GUARD:
        _SNAPSHOTS.pop((namespace, name), None)


def training_jobs(ctx: Context, namespace: str, model: str) -> tuple[str | None, list[str]]:
    """The Model's TrainingJob still running (if any), and when its drift retrains were created."""
    running: str | None = None
    drift: list[str] = []
    for tj in ctx.kube.list("modelship.io/v1alpha1", "TrainingJob", namespace, selector=f"{MODEL_LABEL}={model}"):
        phase = (tj.get("status") or {}).get("phase")
        if running is None and phase not in (TrainingPhase.SUCCEEDED, TrainingPhase.FAILED):
            running = str(tj["metadata"]["name"])
        # Drift and performance retrains share the Model's limits (groundtruth.AUTOMATIC).
        if (tj.get("spec") or {}).get("trigger") in groundtruth.AUTOMATIC and tj["metadata"].get("creationTimestamp"):
            drift.append(str(tj["metadata"]["creationTimestamp"]))
    return running, drift


def create_retrain(ctx: Context, model_body: Body, spec: ModelSpec, status: ModelStatus) -> str | None:
    """A TrainingJob with trigger drift for the Model (the next number); None if one appeared meanwhile."""
    meta = model_body["metadata"]
    numbers = [training_job_number(meta["name"], tj["metadata"]["name"]) or 0 for tj in ctx.kube.list(
        "modelship.io/v1alpha1", "TrainingJob", meta["namespace"], selector=f"{MODEL_LABEL}={meta['name']}")]
    n = max([*numbers, status.training_jobs_created]) + 1
    name = training_job_name(meta["name"], n)
    stable = status.stable_revision
    champion = next((h.artifact_uri for h in status.history if h.revision == stable), None)
    try:
        ctx.kube.create(build_training_job_resource(model_body, spec, name, Trigger.DRIFT,
                                                    default_store=ctx.settings.artifact_store,
                                                    champion_uri=champion))
    except ApiException as exc:
        if exc.status == 409:
            return None
        raise
    API_WRITES.labels("create", "TrainingJob").inc()
    return name


def prometheus_rule(body: Body, spec: DriftMonitorSpec) -> Body:
    """The PrometheusRule the operator keeps for this DriftMonitor (the alert fires after one ``interval``)."""
    meta = body["metadata"]
    return build_prometheus_rule(meta["name"], meta["namespace"], spec.model_ref.name, threshold=spec.threshold,
                                 for_=spec.interval, owner=body)


def ensure_prometheus_rule(ctx: Context, body: Body, spec: DriftMonitorSpec) -> None:
    if not ctx.kube.has_api(PROMETHEUS_RULES_API):
        return
    verb = ctx.kube.ensure(prometheus_rule(body, spec))  # a changed threshold or interval reaches the rule
    if verb is not None:
        API_WRITES.labels(verb, "PrometheusRule").inc()


def export(namespace: str, monitor: str, model: str, method: Method | str, status: DriftMonitorStatus) -> None:
    for score in status.scores:
        DRIFT_SCORE.labels(namespace, model, score.feature, str(method)).set(score.score)
    if status.state is not None:
        DRIFT_STATE.labels(namespace, model, monitor).set(_STATE_VALUE[DriftState(status.state)])


def reconcile(ctx: Context, body: Body) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    now = datetime.now(UTC)
    status = DriftMonitorStatus.model_validate(body.get("status") or {})
    try:
        spec = DriftMonitorSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        problem = (Reason.INVALID_SPEC, "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        placeholder = DriftMonitorSpec.model_validate({"modelRef": {"name": "unknown"}})
        write_status(ctx.kube, body, drift_status(placeholder, status, None, now,
                                                  generation=generation, reference_revision=None,
                                                  problem=problem).wire())
        return
    # Ground truth (issue 20): live quality on its own schedule, observe -> plan -> apply in
    # controllers/groundtruth.py (pure plan: logic/quality.py); the drift part then writes on top.
    body = groundtruth.reconcile_quality(ctx, body, spec)
    status = DriftMonitorStatus.model_validate(body.get("status") or {})
    if not due(spec, status, generation, now):
        return
    ensure_prometheus_rule(ctx, body, spec)

    def fail(reason: str, message: str) -> None:
        new = drift_status(spec, status, None, now, generation=generation, reference_revision=None,
                           problem=(reason, message))
        if write_status(ctx.kube, body, new.wire()) and new.conditions != status.conditions:
            events.post(ctx.kube, body, reason, message, warning=True)

    model_name = spec.model_ref.name
    model = ctx.kube.get("modelship.io/v1alpha1", "Model", namespace, model_name)
    if model is None:
        fail(Reason.MODEL_NOT_FOUND, f"Model {model_name} does not exist in {namespace}")
        return
    mstatus = ModelStatus.model_validate(model.get("status") or {})
    stable = mstatus.stable_revision
    entry = next((h for h in mstatus.history if h.revision == stable), None) if stable else None
    if stable is None or entry is None or not entry.artifact_uri:
        fail(Reason.NO_REFERENCE, f"Model {model_name} has no serving revision yet")
        return
    pods = ctx.kube.list("v1", "Pod", namespace, selector=f"{REVISION_LABEL}={stable}")
    try:
        metadata = reference_for(pods, model_name, entry.artifact_uri, entry.artifact_sha256,
                                 ctx.settings.scrape_timeout_seconds)
    except (LookupError, ValueError) as exc:
        fail(Reason.NO_REFERENCE, f"cannot read the reference of {stable} ({entry.artifact_uri}): {exc}")
        return
    if not metadata.reference.features:
        fail(Reason.NO_REFERENCE, f"the artifact of {stable} has no drift reference (a bare ONNX model)")
        return
    unknown = [f for f in spec.features or [] if f not in metadata.reference.features]
    if unknown:
        fail(Reason.INVALID_SPEC, f"spec.features names {', '.join(unknown)}, which the model does not have; "
             f"it has {', '.join(metadata.reference.features)}")
        return

    window = parse_duration(spec.window.duration)
    if spec.source.type == SourceType.PROMETHEUS:
        try:
            counts = prometheus_counts(ctx, spec, namespace, stable, metadata.reference)
        except NoSeries:
            fail(Reason.NO_SERIES, no_series_message(namespace, stable))
            return
        except PrometheusError as exc:
            fail(Reason.QUERY_FAILED, f"query to Prometheus failed: {exc}")
            return
    else:
        texts = scrape(pods, ctx.settings.scrape_timeout_seconds)
        if not texts:
            fail(Reason.SCRAPE_FAILED, f"no pod of {stable} answered on /metrics")
            return
        counts = windowed((namespace, name), stable, live_counts(texts, metadata.reference), now, window)
    evaluation = evaluate_drift(spec, metadata.reference, counts)

    triggered: str | None = None
    decision = None
    firing = is_firing(alerts.BOOK, namespace, model_name)
    wants = evaluation.state == DriftState.DRIFT or (spec.action.require_alert and firing)
    if wants and spec.action.retrain:
        mspec = ModelSpec.model_validate(model.get("spec") or {})
        if mspec.training is None:
            decision = None  # a Model serving spec.source cannot be retrained
        else:
            running, drift_times = training_jobs(ctx, namespace, model_name)
            decision = drift_retrain_decision(
                spec, mspec.retrain, status, now, running=running, alert_firing=firing, model_triggered=drift_times)
            if decision.allowed:
                triggered = create_retrain(ctx, model, mspec, mstatus)
    new = drift_status(spec, status, evaluation, now, generation=generation, reference_revision=stable,
                       triggered_job=triggered, retrain=decision)
    write_status(ctx.kube, body, new.wire())
    export(namespace, name, model_name, spec.method, new)
    if new.state is not None and (model.get("status") or {}).get("driftState") != new.state:
        ctx.kube.patch("modelship.io/v1alpha1", "Model", namespace, model_name, {"status": {"driftState": new.state}},
                       subresource="status")
        API_WRITES.labels("patch", "Model/status").inc()
    if state_changed(status, new):
        events.post(ctx.kube, body, f"Drift{new.state}", evaluation.message, warning=new.state == DriftState.DRIFT)
    if triggered:
        events.post(ctx.kube, body, Reason.RETRAIN_TRIGGERED,
                    f"Created TrainingJob {triggered} for Model {model_name} (trigger drift): {evaluation.message}")
