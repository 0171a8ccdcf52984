"""TrainingJob controller: a batch Job running the trainer, and the status it reports.

Observe (Job, pods) → compute the whole status (``logic.trainingjob``) →
patch on change. The Job and its spec ConfigMap carry owner references, so
deleting the TrainingJob removes them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modelship.api.common import spec_problems
from modelship.api.trainingjob import TrainingJobSpec, TrainingJobStatus, TrainingPhase
from modelship.builders.common import PodEnvironment
from modelship.builders.training import build_spec_configmap, build_training_job
from modelship.controllers.context import Context
from modelship.k8s import events
from modelship.k8s.status import write_status
from modelship.logic.conditions import COMPLETE, FAILED, Reason, condition, merge_conditions
from modelship.logic.outputs import confine_output
from modelship.logic.trainingjob import compute_status, is_finished
from modelship.metrics import API_WRITES

log = logging.getLogger(__name__)
Body = dict[str, Any]


def fail_invalid_spec(ctx: Context, body: Body, current: TrainingJobStatus, message: str, now: datetime) -> None:
    """Failed with reason InvalidSpec, for good (a TrainingJob's spec is immutable), and a Warning Event
    (issue 22: for an outputUri outside the namespace's artifact locations)."""
    generation = body["metadata"].get("generation")
    failed = current.model_copy(update={
        "phase": TrainingPhase.FAILED, "reason": Reason.INVALID_SPEC, "message": message,
        "observed_generation": generation,
        "conditions": merge_conditions(current.conditions, [
            condition(FAILED, True, Reason.INVALID_SPEC, message, generation=generation),
            condition(COMPLETE, False, Reason.INVALID_SPEC, "", generation=generation)], now),
    })
    if write_status(ctx.kube, body, failed.wire()):
        events.post(ctx.kube, body, Reason.INVALID_SPEC, message, warning=True)


def reconcile(ctx: Context, body: Body) -> None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    now = datetime.now(UTC)
    current = TrainingJobStatus.model_validate(body.get("status") or {})
    if is_finished(current):
        return
    try:
        spec = TrainingJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        fail_invalid_spec(ctx, body, current, spec_problems(exc), now)
        return

    job = ctx.kube.get("batch/v1", "Job", namespace, name)
    if job is None and current.phase in (None, TrainingPhase.PENDING):
        # Issue 22: outputs confined to <store>/<namespace>/ (logic.outputs decides; this is the only call site).
        output = confine_output(spec.output_uri, store=ctx.settings.artifact_store,
                                allowed_prefixes=ctx.settings.allowed_output_prefixes,
                                namespace=namespace, name=name, uid=meta.get("uid"))
        if output.uri is None:
            fail_invalid_spec(ctx, body, current, output.problem or "spec.outputUri is not allowed", now)
            return
        env = PodEnvironment.from_settings(ctx.settings)
        _, created_cm = ctx.kube.create_or_get(build_spec_configmap(name, namespace, spec, body))
        if created_cm:
            API_WRITES.labels("create", "ConfigMap").inc()
        job, created = ctx.kube.create_or_get(build_training_job(
            name, namespace, spec, image=ctx.settings.trainer_image,
            output_uri=output.uri,
            owner=body, environment=env,
        ))
        if created:
            API_WRITES.labels("create", "Job").inc()
            events.post(ctx.kube, body, "JobCreated", f"Created Job {name} (trainer {ctx.settings.trainer_image})")
    pods = ctx.kube.list("v1", "Pod", namespace, selector=f"batch.kubernetes.io/job-name={name}")
    new = compute_status(current, generation, name, job, pods, now)
    if not write_status(ctx.kube, body, new.wire()):
        return
    if new.phase != current.phase:
        log.info("TrainingJob %s/%s is %s", namespace, name, new.phase)
        if new.phase == TrainingPhase.SUCCEEDED:
            artifact = new.artifact.uri if new.artifact else "?"
            events.post(ctx.kube, body, Reason.SUCCEEDED,
                        f"Trained {new.best_estimator}: {new.metric}={new.score}; artifact {artifact}")
        elif new.phase == TrainingPhase.FAILED:
            events.post(ctx.kube, body, new.reason or "Failed", new.message or "training failed", warning=True)
