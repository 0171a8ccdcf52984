"""Model controller: observe the Model and what it owns, plan (``plans.model``), apply.

Observed once per reconcile: its TrainingJobs, Deployments, Services, HPA,
PodDisruptionBudget and HTTPRoute (owned by it, found by the ``modelship.io/model``
label), its serving pods (the canary's /metrics during a rollout, and whether a deploying revision's
pods cannot start; the image a revision runs, once).
Applied: the plan's children through ``k8s.apply.ensure`` (create, patch what
differs, delete what is no longer wanted), then the status (only when it
changed, on the resourceVersion it was computed from), then the Events. A
child the API server refuses as invalid makes the status Ready=False,
InvalidSpec instead (``plans.model.refused``): nothing is deleted for it and
the reconcile does not fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from modelship.api.model import ModelSpec, ModelStatus, Phase
from modelship.api.trainingjob import TrainingJobStatus
from modelship.builders.common import (
    MODEL_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SHADOW_LABEL,
    PodEnvironment,
)
from modelship.builders.model_training import TRIGGER_LABEL
from modelship.controllers.context import Context
from modelship.k8s import events
from modelship.k8s.apply import Refused, ensure, owned_by
from modelship.k8s.status import write_status
from modelship.logic.canary import DeploymentState
from modelship.logic.podstart import waiting
from modelship.logic.revision import training_job_number
from modelship.logic.scrape import Sample, parse_samples, request_counters, shadow_tally
from modelship.metrics import MODELS_BY_PHASE, ROLLOUTS
from modelship.plans.common import parse_spec
from modelship.plans.model import (
    GATEWAY_API,
    Observation,
    ObservedRevision,
    ObservedTrainingJob,
    Plan,
    ServingDefaults,
    plan,
    refused,
)

log = logging.getLogger(__name__)
Body = dict[str, Any]
T = TypeVar("T")
# Kinds a Model owns and prunes (TrainingJobs are kept: they are its history).
OWNED = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
         ("policy/v1", "PodDisruptionBudget"))



def deployment_state(dep: Body) -> DeploymentState:
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep["metadata"]
    return DeploymentState(
        replicas=int(spec.get("replicas", 0)),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        up_to_date=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
    )


def pod_image_id(pods: list[Body]) -> str | None:
    """The image a revision's pods run, as the kubelet reports it (``imageID``: a digest)."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image_id = status.get("imageID")
            if image_id and (status.get("state") or {}).get("running") is not None:
                return str(image_id)
    return None


def read_metrics(ctx: Context, pods: list[Body], view: Callable[[list[Sample]], T]) -> dict[str, T]:
    """Each answering pod's /metrics through ``view`` (its request counters, its shadow tally)."""
    out = {}
    for pod, text in ctx.pods.metrics(pods).items():
        try:
            out[pod] = view(parse_samples(text))
        except ValueError as exc:
            log.info("Pod %s served unreadable metrics: %s", pod, exc)
    return out


def defaults(ctx: Context) -> ServingDefaults:
    s = ctx.settings
    return ServingDefaults(serving_image=s.serving_image, artifact_store=s.artifact_store,
                           environment=PodEnvironment.from_settings(s), history_limit=s.history_limit,
                           allow_test_faults=s.allow_test_faults,
                           allowed_output_prefixes=tuple(s.allowed_output_prefixes))


def observe(ctx: Context, body: Body) -> tuple[Observation, list[Body]]:
    """The Model and everything it owns, read once; and the owned objects its plan may prune."""
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    kube, selector = ctx.kube, f"{MODEL_LABEL}={name}"
    status = ModelStatus.model_validate(body.get("status") or {})
    jobs = []
    for obj in kube.list("modelship.io/v1alpha1", "TrainingJob", namespace, selector=selector):
        number = training_job_number(name, obj["metadata"]["name"])
        if number is not None and owned_by(obj, uid):
            trigger = (obj.get("spec") or {}).get("trigger") or obj["metadata"].get("labels", {}).get(TRIGGER_LABEL)
            jobs.append(ObservedTrainingJob(obj["metadata"]["name"], number, trigger or "manual",
                                            TrainingJobStatus.model_validate(obj.get("status") or {})))
    owned = [o for api, kind in OWNED for o in kube.list(api, kind, namespace, selector=selector) if owned_by(o, uid)]
    gateway_api = ctx.has_api(GATEWAY_API)
    if gateway_api:
        owned += [o for o in kube.list(GATEWAY_API, "HTTPRoute", namespace, selector=selector) if owned_by(o, uid)]
    deployments: dict[str, Body] = {}
    shadows: dict[str, Body] = {}
    for d in owned:
        labels = d["metadata"].get("labels") or {}
        if d["kind"] == "Deployment" and REVISION_LABEL in labels:
            (shadows if labels.get(ROLE_LABEL) == "shadow" else deployments)[labels[REVISION_LABEL]] = d
    pods: dict[str, list[Body]] = {}
    needs_image = {h.revision for h in status.history if h.revision in deployments and h.image is None}
    candidate = status.canary_revision if status.stable_revision else None
    in_shadow = candidate is not None and candidate in shadows
    measured = in_shadow or (candidate is not None and candidate in deployments)  # the candidate's pods are read
    deploying = status.canary_revision is not None and status.canary_revision in deployments
    if needs_image or in_shadow or deploying:  # deploying covers a measured canary
        for pod in kube.list("v1", "Pod", namespace, selector=selector):
            pods.setdefault((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""), []).append(pod)
    if in_shadow:
        pods[candidate or ""] = kube.list("v1", "Pod", namespace, selector=f"{SHADOW_LABEL}={name}")
    revisions = {rev: ObservedRevision(deployment_state(d), ((d.get("spec") or {}).get("template")),
                                       pod_image_id(pods.get(rev, [])) if rev in needs_image else None)
                 for rev, d in deployments.items()}
    shadow = shadows.get(candidate or "")
    counters = read_metrics(ctx, pods.get(candidate or "", []), request_counters) if measured else None
    tallies = read_metrics(ctx, pods.get(status.stable_revision or "", []), shadow_tally) if in_shadow else None
    observation = Observation(
        owner=body, generation=meta.get("generation"), spec=parse_spec(ModelSpec, body.get("spec")),
        # The time after the reads (scraping pods can take a while): what the plan writes now, a
        # step's weight for one, is in place about then.
        status=status, now=datetime.now(UTC), defaults=defaults(ctx),
        annotations=meta.get("annotations") or {}, training_jobs=tuple(jobs), revisions=revisions,
        canary_counters=counters, shadow=ObservedRevision(deployment_state(shadow)) if shadow is not None else None,
        stable_tallies=tallies, gateway_api=gateway_api,
        canary_stuck=waiting(pods.get(status.canary_revision or "", [])) if deploying else (),
    )
    return observation, owned


def apply(ctx: Context, observation: Observation, p: Plan, owned: list[Body]) -> None:
    body = observation.owner
    meta = body["metadata"]
    if p.children is not None:
        try:
            ensure(ctx.kube, p.children, owned)
        except Refused as exc:
            # Retrying the same request cannot succeed: say why in the status (and one Event), as for
            # an invalid spec, and let the next spec change or event try again.
            p = refused(observation, str(exc))
    write_status(ctx.kube, body, p.status.wire())
    for event in p.events:
        events.post(ctx.kube, body, event.reason, event.message, warning=event.warning)
    for name in p.rollout_events:
        ROLLOUTS.labels(meta["namespace"], meta["name"], name).inc()
    count_phase(meta["namespace"], meta["name"], p.status.phase)


def reconcile(ctx: Context, body: Body) -> float | None:
    """One pass; returns when the plan wants to look again (seconds), if it does."""
    observation, owned = observe(ctx, body)
    p = plan(observation)
    apply(ctx, observation, p, owned)
    return p.requeue_after


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
