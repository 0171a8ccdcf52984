"""Model controller: observe the Model's children, ask ``logic.model.plan``, apply it.

Observed: its TrainingJobs and serving Deployments (owned by it, found by the
``modelship.io/model`` label) and, during a canary step, the canary pods'
own /metrics. Applied: a TrainingJob to create, Deployment replica counts,
revisions to delete, the Service, Events, and the status (patched only when
it changed). Everything is named deterministically and owned by the Model,
so a restarted operator finds what it made and deleting the Model removes it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modelship.api.model import ModelSpec, ModelStatus, Phase, TrafficRouting
from modelship.api.trainingjob import TrainingJobStatus
from modelship.builders.common import MODEL_LABEL, REVISION_LABEL, PodEnvironment
from modelship.builders.model_training import TRIGGER_LABEL, build_training_job_resource
from modelship.builders.routing import (
    build_hpa,
    build_httproute,
    build_revision_service,
    build_service,
    revision_service_name,
)
from modelship.builders.serving import build_serving_deployment
from modelship.controllers.disruption import ensure_pdb
from modelship.controllers.metrics import API_WRITES, MODELS_BY_PHASE, ROLLOUTS
from modelship.controllers.runtime import Context
from modelship.k8s import events
from modelship.k8s.scrape import scrape
from modelship.k8s.status import write_status
from modelship.logic.analysis import Verdict, analyse
from modelship.logic.canary import DeploymentState
from modelship.logic.conditions import READY, Reason, condition, merge_conditions
from modelship.logic.model import (
    RETRAIN_ANNOTATION,
    Observation,
    ObservedTrainingJob,
    Plan,
    plan,
    pod_image_id,
    revisions_without_image,
    with_images,
)
from modelship.logic.revision import training_job_number
from modelship.logic.scrape import RequestCounters, parse_samples, request_counters

log = logging.getLogger(__name__)
Body = dict[str, Any]
# Test-only: JSON env for canary pods (e.g. MODELSHIP_FAULT_ERROR_RATIO), honoured only when the
# operator runs with MODELSHIP_ALLOW_TEST_FAULTS=true.
CANARY_ENV_ANNOTATION = "modelship.io/test-canary-env"
GATEWAY_API = "gateway.networking.k8s.io/v1"


def owned_by(obj: Body, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def deployment_state(dep: Body) -> DeploymentState:
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep["metadata"]
    return DeploymentState(
        replicas=int(spec.get("replicas", 0)),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        up_to_date=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
    )


def snapshot(ctx: Context, namespace: str, revision: str) -> dict[str, RequestCounters]:
    pods = ctx.kube.list("v1", "Pod", namespace, selector=f"{REVISION_LABEL}={revision}")
    texts = scrape(pods, ctx.settings.scrape_timeout_seconds)
    out = {}
    for pod, text in texts.items():
        try:
            out[pod] = request_counters(parse_samples(text))
        except ValueError as exc:
            log.info("Pod %s served unreadable metrics: %s", pod, exc)
    return out


def canary_verdict(ctx: Context, namespace: str, spec: ModelSpec, status: ModelStatus) -> Verdict | None:
    """The canary's analysis over the current step, or None when it cannot be read now."""
    if not (status.canary_revision and status.stable_revision and status.step_started_at):
        return None
    current = snapshot(ctx, namespace, status.canary_revision)
    if not current:
        return None
    raw = (status.extra or {}).get("baseline") or {}
    baseline = {pod: RequestCounters.from_wire(c) for pod, c in raw.items()}
    return analyse(baseline, current, spec.rollout.analysis)


def invalid(ctx: Context, body: Body, message: str) -> None:
    now = datetime.now(UTC)
    gen = body["metadata"].get("generation")
    status = ModelStatus.model_validate(body.get("status") or {})
    ready = condition(READY, False, Reason.INVALID_SPEC, message, generation=gen)
    new = status.model_copy(update={
        "observed_generation": gen,
        "phase": status.phase if status.stable_revision else Phase.FAILED,
        "conditions": merge_conditions(status.conditions, [ready], now),
    })
    if write_status(ctx.kube, body, new.wire()):
        events.post(ctx.kube, body, Reason.INVALID_SPEC, message, warning=True)


def reconcile(ctx: Context, body: Body) -> None:
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    try:
        spec = ModelSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        invalid(ctx, body, "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
        return
    status = ModelStatus.model_validate(body.get("status") or {})
    if spec.rollout.traffic_routing == TrafficRouting.GATEWAY_API and not ctx.kube.has_api(GATEWAY_API):
        invalid(ctx, body, "rollout.trafficRouting is gatewayAPI but the cluster serves no Gateway API "
                f"({GATEWAY_API}): install its CRDs or use trafficRouting: replicas")
        return

    tjs = []
    for obj in ctx.kube.list("modelship.io/v1alpha1", "TrainingJob", namespace, selector=f"{MODEL_LABEL}={name}"):
        number = training_job_number(name, obj["metadata"]["name"])
        if number is None or not owned_by(obj, uid):
            continue
        tjs.append(ObservedTrainingJob(
            obj["metadata"]["name"], number,
            (obj.get("spec") or {}).get("trigger") or obj["metadata"].get("labels", {}).get(TRIGGER_LABEL, "manual"),
            TrainingJobStatus.model_validate(obj.get("status") or {}),
        ))
    deployments = {
        d["metadata"]["labels"][REVISION_LABEL]: d
        for d in ctx.kube.list("apps/v1", "Deployment", namespace, selector=f"{MODEL_LABEL}={name}")
        if owned_by(d, uid) and REVISION_LABEL in d["metadata"].get("labels", {})
    }
    observation = Observation(
        namespace=namespace, name=name, generation=meta.get("generation"), spec=spec, status=status,
        serving_image=ctx.settings.serving_image, now=datetime.now(UTC),
        retrain_token=(meta.get("annotations") or {}).get(RETRAIN_ANNOTATION),
        training_jobs=tuple(tjs),
        revisions={rev: deployment_state(d) for rev, d in deployments.items()},
        verdict=canary_verdict(ctx, namespace, spec, status),
        history_limit=ctx.settings.history_limit,
    )
    p = plan(observation)
    apply(ctx, body, spec, p, deployments)


def apply(ctx: Context, body: Body, spec: ModelSpec, p: Plan, deployments: dict[str, Body]) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    kube = ctx.kube
    if p.create_training_job is not None:
        tj_name, trigger = p.create_training_job
        stable = p.status.stable_revision
        champion = next((h.artifact_uri for h in p.status.history if h.revision == stable), None) if stable else None
        _, created = kube.create_or_get(build_training_job_resource(
            body, spec, tj_name, trigger, default_store=ctx.settings.artifact_store, champion_uri=champion))
        if created:
            API_WRITES.labels("create", "TrainingJob").inc()

    if p.take_baseline and p.status.canary_revision:
        counters = snapshot(ctx, namespace, p.status.canary_revision)
        extra = dict(p.status.extra or {})
        extra["baseline"] = {pod: c.to_wire() for pod, c in counters.items()}
        p.status = p.status.model_copy(update={"extra": extra})

    env = PodEnvironment.from_settings(ctx.settings)
    for revision, replicas in p.replicas.items():
        existing = deployments.get(revision)
        if existing is None:
            artifact = p.artifacts.get(revision)
            if artifact is None:
                log.warning("Revision %s of %s/%s has no recorded artifact; cannot recreate it",
                            revision, namespace, name)
                continue
            extra_env = None
            if ctx.settings.allow_test_faults and revision == p.status.canary_revision:
                raw = (meta.get("annotations") or {}).get(CANARY_ENV_ANNOTATION)
                extra_env = {str(k): str(v) for k, v in json.loads(raw).items()} if raw else None
            kube.create_or_get(build_serving_deployment(
                name, namespace, revision, model_uri=artifact.uri, sha256=artifact.sha256, replicas=replicas,
                serving=spec.serving, image=spec.serving.image or ctx.settings.serving_image, owner=body,
                environment=env, extra_env=extra_env,
            ))
            API_WRITES.labels("create", "Deployment").inc()
            events.post(kube, body, "DeploymentCreated", f"Created Deployment {revision} ({replicas} replicas)")
        elif int((existing.get("spec") or {}).get("replicas", 0)) != replicas:
            kube.patch("apps/v1", "Deployment", namespace, revision, {"spec": {"replicas": replicas}})
            API_WRITES.labels("patch", "Deployment").inc()
    # The route moves before old revisions go, so it never points at pods being removed.
    ensure_routes(ctx, body, spec, p)
    for revision in p.delete:
        if kube.delete("apps/v1", "Deployment", namespace, revision):
            API_WRITES.labels("delete", "Deployment").inc()
            events.post(kube, body, "DeploymentDeleted", f"Deleted Deployment {revision}")

    if p.status.stable_revision or p.status.canary_revision:
        service = kube.get("v1", "Service", namespace, name)
        if service is None:
            kube.create_or_get(build_service(name, namespace, body))
            API_WRITES.labels("create", "Service").inc()

    ensure_hpa(ctx, body, spec, p.status.stable_revision)
    # Issue 23 (kind helper): the stable revision's PodDisruptionBudget (spec.serving.podDisruptionBudget);
    # one call, to be ported onto the reshaped controller.
    ensure_pdb(ctx, body, spec, p.status.stable_revision)

    record_images(ctx, namespace, p)
    for reason, message, warning in p.events:
        events.post(kube, body, reason, message, warning=warning)
    for event in p.rollout_events:
        ROLLOUTS.labels(namespace, name, event).inc()
    write_status(kube, body, p.status.wire())
    count_phase(namespace, name, p.status.phase)


_PHASES: dict[tuple[str, str], str] = {}


def count_phase(namespace: str, name: str, phase: Phase | str | None) -> None:
    """modelship_models{phase}: how many Models are in each phase (as this operator last saw them)."""
    if phase is None:
        _PHASES.pop((namespace, name), None)
    else:
        _PHASES[(namespace, name)] = str(phase)
    for p in Phase:
        MODELS_BY_PHASE.labels(p.value).set(sum(1 for v in _PHASES.values() if v == p.value))


def forget_model(namespace: str, name: str) -> None:
    count_phase(namespace, name, None)


def ensure_hpa(ctx: Context, body: Body, spec: ModelSpec, stable: str | None) -> None:
    """An HPA on the stable revision when spec.serving.autoscaling asks for one; none otherwise."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    existing = ctx.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
    if spec.serving.autoscaling is None or stable is None:
        if existing is not None and owned_by(existing, meta["uid"]):
            ctx.kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
            API_WRITES.labels("delete", "HorizontalPodAutoscaler").inc()
        return
    want = build_hpa(name, namespace, stable, spec.serving.autoscaling, body)
    if existing is None:
        ctx.kube.create_or_get(want)
        API_WRITES.labels("create", "HorizontalPodAutoscaler").inc()
    elif {k: existing["spec"].get(k) for k in want["spec"]} != want["spec"]:
        ctx.kube.patch("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name, {"spec": want["spec"]})
        API_WRITES.labels("patch", "HorizontalPodAutoscaler").inc()


def record_images(ctx: Context, namespace: str, p: Plan) -> None:
    """Record in status.history the image (the kubelet's imageID, a digest) each serving
    revision runs, read once from its pods; a revision that has it costs no reads."""
    found = {}
    for revision in revisions_without_image(p.status, p.replicas):
        pods = ctx.kube.list("v1", "Pod", namespace, selector=f"{REVISION_LABEL}={revision}")
        image = pod_image_id(pods)
        if image is not None:
            found[revision] = image
    p.status = with_images(p.status, found)


def ensure(ctx: Context, want: Body) -> None:
    """Create or update ``want`` (no write when it matches), counting the write."""
    verb = ctx.kube.ensure(want)
    if verb is not None:
        API_WRITES.labels(verb, want["kind"]).inc()


def ensure_routes(ctx: Context, body: Body, spec: ModelSpec, p: Plan) -> None:
    """With ``trafficRouting: gatewayAPI``: a Service per role (stable, canary) and an HTTPRoute
    whose weights are the rollout's exact split. The canary's weight only rises once the canary
    is ready at that step's size (``RolloutAction.route_weight``)."""
    rollout = spec.rollout
    if rollout.traffic_routing != TrafficRouting.GATEWAY_API or rollout.gateway is None:
        return
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    stable, canary = p.status.stable_revision, p.status.canary_revision
    if stable is None:
        return  # the first version: the route starts when it is promoted
    ensure(ctx, build_revision_service(name, namespace, "stable", stable, body))
    if canary is not None:
        ensure(ctx, build_revision_service(name, namespace, "canary", canary, body))
    weight = p.action.route_weight if canary is not None and p.action is not None else 0
    ensure(ctx, build_httproute(name, namespace, rollout.gateway, weight, body, has_canary=canary is not None))
    leftover = revision_service_name(name, "canary")
    if canary is None and ctx.kube.get("v1", "Service", namespace, leftover) is not None:
        ctx.kube.delete("v1", "Service", namespace, leftover)
        API_WRITES.labels("delete", "Service").inc()
