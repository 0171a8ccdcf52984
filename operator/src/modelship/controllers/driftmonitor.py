"""DriftMonitor controller: observe the Model's stable pods (or Prometheus), plan
(``plans.driftmonitor``), apply.

Observed when an evaluation is due: the Model, its TrainingJobs, the stable
revision's reference (its metadata, read once per artifact from a serving
pod: the operator needs no store credentials) and the live counts (the pods'
/metrics, or one ``increase()`` query to Prometheus at a URL the platform
allowed: ``logic.prometheus_urls``). With ``performance``,
also when a quality measurement is due or one is in flight: the Model, its
TrainingJobs and the quality Job in flight, by the name status keeps (read
back: finished or not, and its pod's termination message once it has). Applied:
the PrometheusRule, the quality Job and at most one retraining TrainingJob
(``k8s.apply.ensure``, which deletes a quality Job once it has been read),
the status (the window's snapshots with it), the Model's ``driftState``,
the Events and the drift and quality gauges. A child the API server refuses
as invalid gives Ready=False, InvalidSpec instead of the evaluation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from modelship.api.common import parse_duration
from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus, SourceType
from modelship.api.model import ModelSpec, ModelStatus
from modelship.builders.common import MODEL_LABEL, MONITOR_LABEL, REVISION_LABEL, PodEnvironment
from modelship.controllers import alerts
from modelship.controllers.context import Context
from modelship.k8s import events
from modelship.k8s.apply import Refused, ensure, owned_by
from modelship.k8s.prometheus import instant_query
from modelship.k8s.scrape import ready_pods
from modelship.k8s.status import write_status
from modelship.logic.conditions import Reason
from modelship.logic.drift import state_value
from modelship.logic.prometheus import NoSeries, PrometheusError, counts_query, no_series_message
from modelship.logic.prometheus_urls import refusal
from modelship.logic.retrain import is_firing
from modelship.metrics import API_WRITES, DRIFT_SCORE, DRIFT_STATE, MODEL_QUALITY
from modelship.plans import quality
from modelship.plans.common import parse_spec
from modelship.plans.driftmonitor import (
    Observation,
    ObservedJob,
    ObservedModel,
    Plan,
    due,
    plan,
    refused,
)
from modelship_runtime.artifacts.metadata import Metadata

log = logging.getLogger(__name__)
Body = dict[str, Any]
PROMETHEUS_RULES_API = "monitoring.coreos.com/v1"
Series = tuple[Gauge, tuple[str, ...]]  # a gauge and one series' label values
_EXPORTED: dict[tuple[str, str], set[Series]] = {}  # (namespace, monitor) -> the series it exports
_EXPORTED_LOCK = threading.Lock()


def reference_for(ctx: Context, pods: list[Body], model: str, uri: str, sha256: str | None) -> Metadata:
    """The artifact's metadata (its drift reference), read once per artifact from a serving pod
    (``GET /v2/models/<model>/artifact``). The pod's copy must be the recorded artifact (same sha256)."""
    key = f"metadata:{uri}:{sha256}"
    cached = ctx.cached(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    problems = []
    for pod in ready_pods(pods):
        text = ctx.pods.get(pod, f"/v2/models/{model}/artifact")
        if text is None:
            problems.append(f"{pod['metadata']['name']} did not answer")
            continue
        metadata = Metadata.model_validate_json(text)
        if sha256 and metadata.model_sha256 != sha256:
            raise ValueError(f"pod {pod['metadata']['name']} serves model.onnx {metadata.model_sha256[:12]}, "
                             f"not the recorded {sha256[:12]}")
        ctx.remember(key, metadata)
        return metadata
    raise LookupError("no serving pod answered" + (f" ({'; '.join(problems)})" if problems else ""))


def observe_model(ctx: Context, namespace: str, name: str) -> ObservedModel | None:
    body = ctx.kube.get("modelship.io/v1alpha1", "Model", namespace, name)
    if body is None:
        return None
    jobs = tuple(
        ObservedJob(tj["metadata"]["name"], (tj.get("status") or {}).get("phase"),
                    (tj.get("spec") or {}).get("trigger"), tj["metadata"].get("creationTimestamp"))
        for tj in ctx.kube.list("modelship.io/v1alpha1", "TrainingJob", namespace, selector=f"{MODEL_LABEL}={name}"))
    return ObservedModel(body, parse_spec(ModelSpec, body.get("spec")),
                         ModelStatus.model_validate(body.get("status") or {}), jobs)


def source_refusal(ctx: Context, spec: DriftMonitorSpec) -> tuple[str, str] | None:
    """Why a prometheus source must not be queried (reason, message), or None."""
    if not spec.source.prometheus_url:  # the CRD's CEL rule refuses this; a spec applied without it may not
        return Reason.QUERY_FAILED, "source type prometheus needs source.prometheusUrl"
    message = refusal(spec.source.prometheus_url, ctx.settings.prometheus_allowed_urls,
                      token=bool(ctx.settings.prometheus_bearer_token_file))
    return None if message is None else (Reason.PROMETHEUS_URL_NOT_ALLOWED, message)


def observe_live(ctx: Context, spec: DriftMonitorSpec, namespace: str, model: ObservedModel) -> dict[str, Any]:
    """The stable revision's reference and live counts, or the problem that stopped the reading."""
    if spec.source.type == SourceType.PROMETHEUS:
        # Checked before anything is read: a refused URL is never asked, and never gets the token.
        refused = source_refusal(ctx, spec)
        if refused is not None:
            return {"problem": refused}
    stable = model.status.stable_revision
    entry = next((h for h in model.status.history if h.revision == stable), None) if stable else None
    if stable is None or entry is None or not entry.artifact_uri:
        return {"problem": (Reason.NO_REFERENCE, f"Model {spec.model_ref.name} has no serving revision yet")}
    pods = ctx.kube.list("v1", "Pod", namespace, selector=f"{REVISION_LABEL}={stable}")
    try:
        reference = reference_for(ctx, pods, spec.model_ref.name, entry.artifact_uri, entry.artifact_sha256)
    except (LookupError, ValueError) as exc:
        return {"problem": (Reason.NO_REFERENCE, f"cannot read the reference of {stable} ({entry.artifact_uri}): {exc}")}
    if not reference.reference.features:
        return {"problem": (Reason.NO_REFERENCE, f"the artifact of {stable} has no drift reference (a bare ONNX model)")}
    if spec.source.type != SourceType.PROMETHEUS:
        return {"reference": reference, "texts": ctx.pods.metrics(pods)}
    url = spec.source.prometheus_url
    assert url is not None  # source_refusal refused a prometheus source without one
    query = counts_query(namespace, stable, parse_duration(spec.window.duration))
    try:
        vector = instant_query(url, query, ctx.settings.prometheus_timeout_seconds,
                               ctx.settings.prometheus_bearer_token_file)
    except NoSeries:
        return {"problem": (Reason.NO_SERIES, no_series_message(namespace, stable))}
    except PrometheusError as exc:
        return {"problem": (Reason.QUERY_FAILED, f"query to Prometheus failed: {exc}")}
    return {"reference": reference, "vector": vector}



def observe_quality_job(ctx: Context, body: Body, status: DriftMonitorStatus,
                        ) -> tuple[quality.ObservedQualityJob | None, list[Body]]:
    """The quality Job named in status, read back (its pods only once it has finished), and as
    an owned object: once the plan no longer wants it, ``ensure`` deletes it. Read by name (RBAC
    grants get, not list); a Job the status lost track of ends by its deadline and TTL."""
    meta = body["metadata"]
    name = status.performance.job if status.performance else None
    job = ctx.kube.get("batch/v1", "Job", meta["namespace"], name) if name else None
    if job is None or name is None or not owned_by(job, meta["uid"]):
        return None, []
    finished = quality.job_finished(job)
    message = ""
    if finished is not None:
        pods = ctx.kube.list("v1", "Pod", meta["namespace"], selector=f"batch.kubernetes.io/job-name={name}")
        message = quality.termination_message(pods)
    return quality.ObservedQualityJob(name, finished, message), [{"apiVersion": "batch/v1", "kind": "Job", **job}]


def observe(ctx: Context, body: Body, spec: DriftMonitorSpec | str, status: DriftMonitorStatus,
            now: datetime, drift_due: bool = True) -> tuple[Observation, list[Body]]:
    meta = body["metadata"]
    namespace = meta["namespace"]
    rule_api = ctx.has_api(PROMETHEUS_RULES_API)
    owned: list[Body] = []
    if rule_api:
        try:
            owned = [r for r in ctx.kube.list(PROMETHEUS_RULES_API, "PrometheusRule", namespace,
                                              selector=f"{MONITOR_LABEL}={meta['name']}") if owned_by(r, meta["uid"])]
        except ApiException as exc:
            if exc.status != 404:
                raise
            # The CRD went after discovery said it was there (uninstalled): no rule, ask again later.
            ctx.forget_api(PROMETHEUS_RULES_API)
            rule_api = False
    base: dict[str, Any] = {"owner": body, "generation": meta.get("generation"), "spec": spec, "status": status,
                            "now": now, "artifact_store": ctx.settings.artifact_store, "rule_api": rule_api,
                            "drift_due": drift_due, "trainer_image": ctx.settings.trainer_image,
                            "environment": PodEnvironment.from_settings(ctx.settings)}
    if isinstance(spec, str):
        return Observation(**base), owned
    base["quality_job"], jobs = observe_quality_job(ctx, body, status)
    owned += jobs
    model = observe_model(ctx, namespace, spec.model_ref.name)
    if model is None:
        problem = (Reason.MODEL_NOT_FOUND, f"Model {spec.model_ref.name} does not exist in {namespace}")
        return Observation(**base, problem=problem), owned
    if not drift_due:
        return Observation(**base, model=model), owned
    live = observe_live(ctx, spec, namespace, model)
    firing = is_firing(alerts.BOOK, namespace, spec.model_ref.name)
    return Observation(**base, model=model, alert_firing=firing, **live), owned


def apply_children(ctx: Context, p: Plan, owned: list[Body]) -> None:
    if p.children is None:
        return
    try:
        ensure(ctx.kube, p.children, owned)
    except ApiException as exc:
        if exc.status != 404 or not any(c.obj.get("kind") == "PrometheusRule" for c in p.children):
            raise
        ctx.forget_api(PROMETHEUS_RULES_API)  # its CRD went since observe: the next reconcile knows
        ensure(ctx.kube, [c for c in p.children if c.obj.get("kind") != "PrometheusRule"],
               [o for o in owned if o.get("kind") != "PrometheusRule"])


def apply(ctx: Context, observation: Observation, p: Plan, owned: list[Body]) -> None:
    body, spec = observation.owner, observation.spec
    meta = body["metadata"]
    try:
        apply_children(ctx, p, owned)
    except Refused as exc:
        p = refused(observation, str(exc))  # a condition, not a reconcile failing at every interval
    write_status(ctx.kube, body, p.status.wire())
    if p.model_drift_state is not None and not isinstance(spec, str):
        ctx.kube.patch("modelship.io/v1alpha1", "Model", meta["namespace"], spec.model_ref.name,
                       {"status": {"driftState": p.model_drift_state}}, subresource="status")
        API_WRITES.labels("patch", "Model/status").inc()
    for event in p.events:
        events.post(ctx.kube, body, event.reason, event.message, warning=event.warning)
    if isinstance(spec, str):
        return  # an invalid spec's plan measured nothing
    namespace, model = meta["namespace"], spec.model_ref.name
    if p.evaluated:
        export_verdict(namespace, model, meta["name"], str(spec.method), p.status)
    for revision, metric, source, value in p.quality_gauges:
        MODEL_QUALITY.labels(namespace, model, revision, metric, source).set(value)


def reconcile(ctx: Context, body: Body) -> None:
    now = datetime.now(UTC)
    status = DriftMonitorStatus.model_validate(body.get("status") or {})
    spec = parse_spec(DriftMonitorSpec, body.get("spec"))
    drift_due = True
    if not isinstance(spec, str):
        drift_due = due(spec, status, body["metadata"].get("generation"), now)
        if not drift_due and not quality.wanted(spec, status, now):
            return
    observation, owned = observe(ctx, body, spec, status, now, drift_due)
    apply(ctx, observation, plan(observation), owned)


def export_verdict(namespace: str, model: str, monitor: str, method: str, status: DriftMonitorStatus) -> None:
    """The drift gauges say what the status says: a score per feature of the latest verdict on the
    Model's current reference and the state, and nothing where status has none. Once a new revision
    is promoted the old model's scores go until the first verdict on the new one, so an alert on them
    resolves instead of firing on for a model that no longer serves."""
    series: dict[Series, float] = {
        (DRIFT_SCORE, (namespace, model, monitor, s.feature, method)): s.score for s in status.scores}
    if status.state is not None:
        series[(DRIFT_STATE, (namespace, model, monitor))] = state_value(status.state)
    with _EXPORTED_LOCK:
        drop(namespace, monitor, keep=series.keys())
        for (gauge, labels), value in series.items():
            gauge.labels(*labels).set(value)
        _EXPORTED[(namespace, monitor)] = set(series)


def drop(namespace: str, monitor: str, keep: Collection[Series] = ()) -> None:
    """Remove the monitor's exported series but those in ``keep`` (called with ``_EXPORTED_LOCK`` held)."""
    for gauge, labels in _EXPORTED.pop((namespace, monitor), set()) - set(keep):
        gauge.remove(*labels)


def forget(namespace: str, name: str) -> None:
    """A deleted monitor's series go with it (its window lived in its status)."""
    with _EXPORTED_LOCK:
        drop(namespace, name)
