"""A DriftMonitor's live quality, observe -> plan -> apply (the plan is ``logic.quality``).

Called from the DriftMonitor's reconcile before its drift part, on every
reconcile (a quality Job in flight is polled at the reconcile interval, the
measurement itself runs every ``performance.interval``). It reads the Model,
the Job in flight and its pods, and the Model's TrainingJobs; creates or
deletes the quality Job and the TrainingJob a drop asks for; sets the
``modelship_model_quality`` gauges; and writes the performance part of the
status (returning the object as written, so the drift part that follows
writes on top of it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from modelship.api.model import ModelSpec, ModelStatus
from modelship.api.trainingjob import TrainingPhase, Trigger
from modelship.builders.common import MODEL_LABEL, PodEnvironment
from modelship.builders.quality import build_performance_retrain, build_quality_job
from modelship.controllers.metrics import API_WRITES, REGISTRY
from modelship.controllers.runtime import Context
from modelship.k8s import events
from modelship.k8s.status import write_status
from modelship.logic.quality import QualityObservation, QualityPlan, merged_status, plan_quality
from modelship.logic.revision import training_job_name, training_job_number

log = logging.getLogger(__name__)
Body = dict[str, Any]

MODEL_QUALITY = Gauge(
    "modelship_model_quality",
    "Live quality per serving revision from logged predictions and late labels: source realised (on labelled "
    "rows) or estimated (CBPE, binary classifiers); metric labelled_rows counts the labelled rows.",
    ["namespace", "model", "revision", "metric", "source"], registry=REGISTRY,
)
AUTOMATIC = (Trigger.DRIFT, Trigger.PERFORMANCE)


def observe(ctx: Context, body: Body, spec: DriftMonitorSpec, status: DriftMonitorStatus,
            now: datetime) -> QualityObservation:
    meta = body["metadata"]
    namespace, model_name = meta["namespace"], spec.model_ref.name
    model = ctx.kube.get("modelship.io/v1alpha1", "Model", namespace, model_name)
    job_name = status.performance.job if status.performance else None
    job = ctx.kube.get("batch/v1", "Job", namespace, job_name) if job_name else None
    pods = (ctx.kube.list("v1", "Pod", namespace, selector=f"batch.kubernetes.io/job-name={job_name}")
            if job is not None else [])
    running: str | None = None
    automatic: list[str] = []
    numbers = [0]
    if model is not None:
        for tj in ctx.kube.list("modelship.io/v1alpha1", "TrainingJob", namespace,
                                selector=f"{MODEL_LABEL}={model_name}"):
            name = str(tj["metadata"]["name"])
            numbers.append(training_job_number(model_name, name) or 0)
            phase = (tj.get("status") or {}).get("phase")
            if running is None and phase not in (TrainingPhase.SUCCEEDED, TrainingPhase.FAILED):
                running = name
            if (tj.get("spec") or {}).get("trigger") in AUTOMATIC and tj["metadata"].get("creationTimestamp"):
                automatic.append(str(tj["metadata"]["creationTimestamp"]))
        created = ModelStatus.model_validate(model.get("status") or {}).training_jobs_created
        numbers.append(created)
    return QualityObservation(
        namespace=namespace, monitor=meta["name"], generation=meta.get("generation"), spec=spec, status=status,
        model=model, job=job, job_pods=pods, running_training_job=running, automatic_retrains=automatic,
        next_training_job=training_job_name(model_name, max(numbers) + 1) if model is not None else None,
        default_store=ctx.settings.artifact_store, now=now,
    )


def apply(ctx: Context, body: Body, obs: QualityObservation, plan: QualityPlan) -> Body:
    meta = body["metadata"]
    namespace = meta["namespace"]
    kube = ctx.kube
    perf = obs.spec.performance
    if plan.create_job is not None and perf is not None:
        name, request = plan.create_job
        _, created = kube.create_or_get(build_quality_job(
            name, namespace, obs.spec.model_ref.name, meta["name"], request, image=ctx.settings.trainer_image,
            owner=body, environment=PodEnvironment.from_settings(ctx.settings), resource_spec=perf.resources))
        if created:
            API_WRITES.labels("create", "Job").inc()
            log.info("Created quality Job %s/%s for DriftMonitor %s", namespace, name, meta["name"])
    if plan.delete_job is not None and kube.delete("batch/v1", "Job", namespace, plan.delete_job):
        API_WRITES.labels("delete", "Job").inc()
    if plan.retrain is not None and obs.model is not None:
        tj_name, production, champion = plan.retrain
        _, created = kube.create_or_get(build_performance_retrain(
            obs.model, ModelSpec.model_validate(obs.model.get("spec") or {}), tj_name,
            default_store=ctx.settings.artifact_store, production=production, champion_uri=champion))
        if created:
            API_WRITES.labels("create", "TrainingJob").inc()
    for revision, metric, source, value in plan.gauges:
        MODEL_QUALITY.labels(namespace, obs.spec.model_ref.name, revision, metric, source).set(value)
    new = merged_status(obs.status, plan, obs.now)
    if write_status(kube, body, new.wire()):
        fresh = kube.get(body["apiVersion"], body["kind"], namespace, meta["name"])
        body = fresh or body
    for reason, message, warning in plan.events:
        events.post(kube, body, reason, message, warning=warning)
    return body


def reconcile_quality(ctx: Context, body: Body, spec: DriftMonitorSpec) -> Body:
    """Observe, plan, apply; returns the monitor as it now stands (for the drift part's write)."""
    status = DriftMonitorStatus.model_validate(body.get("status") or {})
    if spec.performance is None and status.performance is None:
        return body
    obs = observe(ctx, body, spec, status, datetime.now(UTC))
    return apply(ctx, body, obs, plan_quality(obs))
