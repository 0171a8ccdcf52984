"""The Model's children as its plan wants them: the TrainingJob to start, one Deployment per
revision kept, the Service, the HPA, with Gateway API routing the role Services and the
HTTPRoute, and the stable revision's PodDisruptionBudget. Anything the Model owns of these kinds
and not listed here is removed."""

from __future__ import annotations

from modelship.api.model import TrafficRouting, champion_uri
from modelship.builders.common import Child, Obj
from modelship.builders.model_training import build_training_job_resource
from modelship.builders.placement import PDB_BOUNDS, build_pdb
from modelship.builders.routing import (
    build_hpa,
    build_httproute,
    build_revision_service,
    build_service,
    build_shadow_service,
)
from modelship.builders.serving import build_serving_deployment, build_shadow_deployment
from modelship.plans.model import history as h
from modelship.plans.model.observation import Artifact, Draft, Observation
from modelship.plans.model.revision import template_for

REPLICAS_ONLY = ("spec.replicas",)  # a revision's pod template is fixed by its name


def template_of(obs: Observation, d: Draft, revision: str) -> Obj | None:
    """The pod template of a revision kept: the candidate's, or rebuilt from its artifact (used
    only if its Deployment must be created again), or the one its Deployment has: a revision that
    serves is never dropped for want of a template."""
    if d.candidate is not None and d.candidate.revision == revision:
        return d.candidate.template
    entry = h.find(d.history, revision=revision)
    if entry is None or entry.artifact_uri is None:
        seen = obs.revisions.get(revision)
        return seen.template if seen is not None else None
    return template_for(obs, d, Artifact(entry.artifact_uri, entry.artifact_sha256))


def deployments(obs: Observation, d: Draft) -> list[Child]:
    out = []
    for revision, replicas in d.replicas.items():
        template = template_of(obs, d, revision)
        if template is not None:
            out.append(Child(build_serving_deployment(obs.name, obs.namespace, revision, template,
                                                      replicas=replicas, owner=obs.owner), sync=REPLICAS_ONLY))
    candidate = d.status.canary_revision
    if candidate and d.shadow_replicas is not None and (template := template_of(obs, d, candidate)) is not None:
        out.append(Child(build_shadow_deployment(obs.name, obs.namespace, candidate, template,
                                                 replicas=d.shadow_replicas, owner=obs.owner), sync=REPLICAS_ONLY))
    return out


def routing(obs: Observation, d: Draft) -> list[Child]:
    stable, canary = d.status.stable_revision, d.status.canary_revision
    rollout, spec = d.spec.rollout, d.spec
    out = []
    if stable or canary:
        out.append(Child(build_service(obs.name, obs.namespace, obs.owner)))
    if rollout.shadow is not None and stable:
        # Kept while the spec asks for a shadow, not only while one runs: the stable's servers
        # resolve its name at once when a shadow starts (a name created then would stay cached
        # as unknown by the cluster DNS for up to 30 s) and find it refusing until it has pods.
        out.append(Child(build_shadow_service(obs.name, obs.namespace, obs.owner)))
    if rollout.traffic_routing == TrafficRouting.GATEWAY_API and rollout.gateway is not None and stable:
        # The first version gets its route when it is promoted.
        out.append(Child(build_revision_service(obs.name, obs.namespace, "stable", stable, obs.owner)))
        if canary is not None and d.shadow_replicas is None:
            out.append(Child(build_revision_service(obs.name, obs.namespace, "canary", canary, obs.owner)))
        weight = d.action.route_weight if canary is not None and d.action is not None else 0
        shadow_percent = rollout.shadow.percent if rollout.shadow is not None and d.shadow_replicas else None
        has_canary = canary is not None and shadow_percent is None
        log = spec.serving.prediction_log
        # Labels steer retraining: the Gateway takes them only where a token guards them.
        feedback = log is not None and log.enabled and log.feedback_token_secret is not None
        out.append(Child(build_httproute(obs.name, obs.namespace, rollout.gateway, weight if has_canary else 0,
                                         obs.owner, has_canary=has_canary, mirror_percent=shadow_percent,
                                         feedback=feedback)))
    if spec.serving.autoscaling is not None and stable:
        out.append(Child(build_hpa(obs.name, obs.namespace, stable, spec.serving.autoscaling, obs.owner)))
    return out


def disruption(obs: Observation, d: Draft) -> list[Child]:
    """The PodDisruptionBudget ``<model>`` on the stable revision while the spec asks for one: it
    moves to the new stable on promotion and goes with the field (``ensure`` prunes it)."""
    budget, stable = d.spec.serving.pod_disruption_budget, d.status.stable_revision
    if budget is None or stable is None:
        return []
    pdb = build_pdb(obs.name, obs.namespace, stable, budget, obs.owner)
    return [Child(pdb, absent=tuple(f"spec.{k}" for k in PDB_BOUNDS if k not in pdb["spec"]))]


def children(obs: Observation, d: Draft) -> list[Child]:
    """In apply order: the TrainingJob, the Deployments, what routes to them, the stable's budget."""
    out = []
    if d.create is not None:
        name, trigger = d.create
        out.append(Child(build_training_job_resource(
            obs.owner, d.spec, name, trigger, default_store=obs.defaults.artifact_store,
            champion_uri=champion_uri(d.status)), sync=()))
    return out + deployments(obs, d) + routing(obs, d) + disruption(obs, d)
