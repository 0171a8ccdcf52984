"""A TrainingJob's plan: its Jobs and pods as observed -> the whole next status, the Jobs it
wants, and the Events to post (pure).

``search.parallelism`` 1: the spec ConfigMap and one Job running the whole
training. N > 1: the ConfigMap, the Indexed search Job, and once every index
has succeeded, the refit Job (named like the single Job, so ``jobName`` and
``kubectl logs job/<name>`` point at the pod that wrote the artifact).
Jobs are created and never patched (their pod templates are immutable); an
existing Job stays in the desired set so it is neither deleted nor made
twice, and a Job is only asked for while the run needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelship.api.trainingjob import IndexPhase, TrainingJobSpec, TrainingJobStatus, TrainingPhase
from modelship.builders.common import Child, PodEnvironment
from modelship.builders.training import (
    build_search_job,
    build_spec_configmap,
    build_training_job,
    search_job_name,
    spec_configmap_name,
)
from modelship.logic import trainersearch
from modelship.logic.conditions import COMPLETE, FAILED, Reason, condition, merge_conditions
from modelship.logic.outputs import OutputDecision, confine_output
from modelship.logic.trainingjob import compute_fanout_status, compute_status, is_finished
from modelship.plans.common import Event, parse_spec

Obj = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """What the operator's settings give a plan: the trainer image, the store, the pods' environment."""

    trainer_image: str
    artifact_store: str
    environment: PodEnvironment = field(default_factory=PodEnvironment)
    allowed_output_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    body: Obj  # the TrainingJob as read (metadata, spec, status)
    settings: Settings
    now: datetime
    jobs: dict[str, Obj] = field(default_factory=dict)  # owned batch Jobs by name
    pods: dict[str, list[Obj]] = field(default_factory=dict)  # pods by their Job's name
    configmap: bool = False  # the spec ConfigMap exists


@dataclass
class Plan:
    status: TrainingJobStatus
    children: list[Obj] = field(default_factory=list)  # desired, in create order
    events: list[Event] = field(default_factory=list)

    def to_create(self, obs: Observation) -> list[Obj]:
        """The desired children not observed (the minimal apply creates these, and only these)."""
        return [c for c in self.children if not _observed(obs, c)]

    def desired(self) -> list[Child]:
        """The children for ``k8s.apply.ensure``: create-only (a Job's pod template is immutable)."""
        return [Child(c, ()) for c in self.children]


def _observed(obs: Observation, child: Obj) -> bool:
    name = child["metadata"]["name"]
    if child["kind"] == "ConfigMap":
        return obs.configmap
    return name in obs.jobs


def _confined(obs: Observation, spec: TrainingJobSpec) -> OutputDecision:
    meta, s = obs.body["metadata"], obs.settings
    return confine_output(spec.output_uri, store=s.artifact_store, allowed_prefixes=s.allowed_output_prefixes,
                          namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid"))


def output_uri(obs: Observation, spec: TrainingJobSpec) -> str | None:
    """Where the artifact goes, confined to the namespace's locations (issue 22: ``logic.outputs``
    decides), or None when the spec asks for another place. A run whose Jobs exist keeps the place
    they were made with."""
    decision = _confined(obs, spec)
    if decision.uri is None and obs.jobs and spec.output_uri:
        return spec.output_uri
    return decision.uri


def output_problem(obs: Observation, spec: TrainingJobSpec) -> str:
    return _confined(obs, spec).problem or "spec.outputUri is not allowed"


def is_finished_body(body: Obj) -> bool:
    """A finished run keeps its status for good: nothing to observe."""
    return is_finished(TrainingJobStatus.model_validate(body.get("status") or {}))


# --- steps ----------------------------------------------------------------------------------

def invalid_status(current: TrainingJobStatus, message: str, generation: int | None,
                   now: datetime) -> TrainingJobStatus:
    return current.model_copy(update={
        "phase": TrainingPhase.FAILED, "reason": Reason.INVALID_SPEC, "message": message,
        "observed_generation": generation,
        "conditions": merge_conditions(current.conditions, [
            condition(FAILED, True, Reason.INVALID_SPEC, message, generation=generation),
            condition(COMPLETE, False, Reason.INVALID_SPEC, "", generation=generation)], now),
    })


def search_done(obs: Observation, spec: TrainingJobSpec, name: str) -> bool:
    """Every index has succeeded: the Job says so, or the status recorded it, or the refit exists."""
    if name in obs.jobs:
        return True
    if trainersearch.is_complete(obs.jobs.get(search_job_name(name))):
        return True
    search = TrainingJobStatus.model_validate(obs.body.get("status") or {}).search
    return (search is not None and len(search.indexes) == spec.search.parallelism
            and all(i.phase == IndexPhase.SUCCEEDED for i in search.indexes))


def desired_children(obs: Observation, spec: TrainingJobSpec, uri: str) -> list[Obj]:
    """ConfigMap, then the Job(s) this stage of the run needs."""
    meta = obs.body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    s = obs.settings
    kwargs: dict[str, Any] = {"image": s.trainer_image, "output_uri": uri, "owner": obs.body,
                              "environment": s.environment}
    children = [build_spec_configmap(name, namespace, spec, obs.body)]
    if spec.search.parallelism == 1:
        children.append(build_training_job(name, namespace, spec, **kwargs))
        return children
    search_name = search_job_name(name)
    done = search_done(obs, spec, name)
    if not done or search_name in obs.jobs:
        children.append(build_search_job(name, namespace, spec, **kwargs))
    if done:
        children.append(build_training_job(name, namespace, spec, **kwargs))
    return children


def next_status(obs: Observation, spec: TrainingJobSpec, current: TrainingJobStatus) -> TrainingJobStatus:
    meta = obs.body["metadata"]
    name, generation = meta["name"], meta.get("generation")
    model = spec.model_ref.name if spec.model_ref else None
    if spec.search.parallelism == 1:
        return compute_status(current, generation, name, obs.jobs.get(name), obs.pods.get(name, []), obs.now,
                              model=model)
    search_name = search_job_name(name)
    return compute_fanout_status(
        current, generation, spec, (search_name, name), obs.jobs.get(search_name), obs.pods.get(search_name, []),
        obs.jobs.get(name), obs.pods.get(name, []), obs.now, model=model)


def events_for(obs: Observation, spec: TrainingJobSpec, current: TrainingJobStatus, new: TrainingJobStatus,
               creating: list[Obj]) -> list[Event]:
    name = obs.body["metadata"]["name"]
    out: list[Event] = []
    for child in creating:
        if child["kind"] != "Job":
            continue
        job = child["metadata"]["name"]
        if child["spec"].get("completionMode") == "Indexed":
            out.append(Event("JobCreated", f"Created Indexed Job {job} ({spec.search.parallelism} pods scoring "
                                           f"{trainersearch.planned_cells(spec) or 'the'} cells)"))
        elif spec.search.parallelism > 1:
            out.append(Event("JobCreated", f"Created refit Job {job} (search of TrainingJob {name} done)"))
        else:
            out.append(Event("JobCreated", f"Created Job {job} (trainer {obs.settings.trainer_image})"))
    before = {i.index: i for i in (current.search.indexes if current.search else [])}
    for index in new.search.indexes if new.search else []:
        prev = before.get(index.index)
        if index.failures > (prev.failures if prev else 0) and not is_finished(new):
            out.append(Event("IndexFailed", f"Index {index.index} of search Job {search_job_name(name)} failed "
                                            f"({index.reason}); retried alone", warning=True))
    if new.reason == Reason.POD_NOT_STARTING and (new.reason, new.message) != (current.reason, current.message):
        # Once per cause: the message keeps its text while the kubelet retries the same thing.
        out.append(Event(Reason.POD_NOT_STARTING, new.message or "a trainer pod cannot start", warning=True))
    if new.phase != current.phase:
        if new.phase == TrainingPhase.SUCCEEDED:
            artifact = new.artifact.uri if new.artifact else "?"
            out.append(Event(Reason.SUCCEEDED,
                             f"Trained {new.best_estimator}: {new.metric}={new.score}; artifact {artifact}"))
        elif new.phase == TrainingPhase.FAILED:
            out.append(Event(new.reason or "Failed", new.message or "training failed", warning=True))
    return out


# --- the plan -------------------------------------------------------------------------------

def refused(obs: Observation, message: str) -> Plan:
    """The API server refused a child (``message`` names it and why): the run fails as InvalidSpec,
    once (a TrainingJob's spec is immutable, so the same run would be refused again)."""
    meta = obs.body["metadata"]
    current = TrainingJobStatus.model_validate(obs.body.get("status") or {})
    return Plan(status=invalid_status(current, message, meta.get("generation"), obs.now),
                events=[Event(Reason.INVALID_SPEC, message, warning=True)])


def plan(obs: Observation) -> Plan:
    """The whole next status, the children wanted, and the Events; nothing for a finished run."""
    meta = obs.body["metadata"]
    current = TrainingJobStatus.model_validate(obs.body.get("status") or {})
    if is_finished(current):
        return Plan(status=current)
    spec = parse_spec(TrainingJobSpec, obs.body.get("spec"))
    uri = output_uri(obs, spec) if not isinstance(spec, str) else None
    if isinstance(spec, str) or uri is None:
        message = spec if isinstance(spec, str) else output_problem(obs, spec)
        return Plan(status=invalid_status(current, message, meta.get("generation"), obs.now),
                    events=[Event(Reason.INVALID_SPEC, message, warning=True)])
    children = desired_children(obs, spec, uri)
    status = next_status(obs, spec, current)
    creating = [] if is_finished(status) else [c for c in children if not _observed(obs, c)]
    if is_finished(status):
        # Nothing new for a run that just ended (e.g. the refit is not made after a failed search).
        children = [c for c in children if _observed(obs, c)]
    return Plan(status=status, children=children, events=events_for(obs, spec, current, status, creating))


__all__ = ["Event", "Observation", "Plan", "Settings", "plan", "refused", "spec_configmap_name"]
