"""TrainingJob controller: observe -> plan -> apply.

Observe reads the TrainingJob's Jobs (the trainer, or the search and refit
Jobs of a fanned-out search), their pods and the spec ConfigMap, once.
``plans.trainingjob.plan`` decides the whole next status, the children and
the Events, purely. Apply is ``k8s.apply.ensure`` with create-only children
(409 is fine; Jobs are never patched: their pod templates are immutable),
then the status on change and the Events; a child the API server refuses as
invalid fails the run as InvalidSpec. Every child carries an owner
reference, so deleting the TrainingJob removes them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from modelship.builders.common import PodEnvironment
from modelship.builders.training import search_job_name, spec_configmap_name
from modelship.controllers.context import Context
from modelship.k8s import events
from modelship.k8s.apply import Refused, ensure
from modelship.k8s.status import write_status
from modelship.plans import trainingjob as plans
from modelship.plans.trainingjob import Observation, Plan, Settings

log = logging.getLogger(__name__)
Body = dict[str, Any]


def observe(ctx: Context, body: Body) -> Observation:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    settings = Settings(ctx.settings.trainer_image, ctx.settings.artifact_store,
                        PodEnvironment.from_settings(ctx.settings),
                        tuple(ctx.settings.allowed_output_prefixes))
    now = datetime.now(UTC)
    if plans.is_finished_body(body):
        return Observation(body=body, settings=settings, now=now)
    jobs: dict[str, Body] = {}
    pods: dict[str, list[Body]] = {}
    fanned_out = ((body.get("spec") or {}).get("search") or {}).get("parallelism", 1) != 1
    for job_name in (name, search_job_name(name)) if fanned_out else (name,):
        job = ctx.kube.get("batch/v1", "Job", namespace, job_name)
        if job is not None:
            jobs[job_name] = job
        found = ctx.kube.list("v1", "Pod", namespace, selector=f"batch.kubernetes.io/job-name={job_name}")
        if found:
            pods[job_name] = found
    # The ConfigMap is made before any Job, so a Job there means it is too.
    configmap = bool(jobs) or ctx.kube.get("v1", "ConfigMap", namespace, spec_configmap_name(name)) is not None
    return Observation(body=body, settings=settings, now=now, jobs=jobs, pods=pods, configmap=configmap)


def apply(ctx: Context, body: Body, obs: Observation, plan: Plan) -> None:
    meta = body["metadata"]
    # Only what the plan wants and was not observed: owned Jobs stay in the desired set while they exist.
    try:
        ensure(ctx.kube, [c for c in plan.desired() if c.obj in plan.to_create(obs)], [])
    except Refused as exc:
        plan = plans.refused(obs, str(exc))  # the run fails as InvalidSpec rather than retrying for ever
    current_phase = (body.get("status") or {}).get("phase")
    if write_status(ctx.kube, body, plan.status.wire()) and plan.status.phase != current_phase:
        log.info("TrainingJob %s/%s is %s", meta["namespace"], meta["name"], plan.status.phase)
    for event in plan.events:
        events.post(ctx.kube, body, event.reason, event.message, warning=event.warning)


def reconcile(ctx: Context, body: Body) -> None:
    obs = observe(ctx, body)
    apply(ctx, body, obs, plans.plan(obs))
