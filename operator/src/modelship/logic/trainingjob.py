"""A TrainingJob's status, computed whole from what is observed.

Inputs are the batch Jobs and their pods as dicts (as the API returns them);
the trainer's one-line JSON summary arrives in the terminated container's
termination message. The output is the complete new status: the caller
diffs it against the stored one and patches only on change. A finished
TrainingJob (Succeeded or Failed) keeps its status for good.

``search.parallelism`` 1 is one Job (``compute_status``); above 1 it is the
Indexed search Job and then the refit Job (``compute_fanout_status``, with
the search's own bookkeeping in ``trainersearch``). A trainer the kernel
killed for memory ends the run with reason ``OOMKilled`` and a message
naming the limit to raise, never as a generic failure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelship.api.trainingjob import (
    SearchProgress,
    TrainingJobSpec,
    TrainingJobStatus,
    TrainingPhase,
)
from modelship.logic import podstart, trainersearch
from modelship.logic.conditions import COMPLETE, FAILED, Reason, condition, merge_conditions
from modelship.logic.trainersearch import (
    EXIT_REASONS,
    OOM_REASON,
    Termination,
    last_termination,
    parse_summary,
)

Obj = dict[str, Any]
FINISHED = {TrainingPhase.SUCCEEDED, TrainingPhase.FAILED}
SEARCHING = "Searching"
REFITTING = "Refitting"

__all__ = ["EXIT_REASONS", "compute_fanout_status", "compute_status", "is_finished", "last_termination",
           "parse_summary"]


def is_finished(status: TrainingJobStatus) -> bool:
    return status.phase in FINISHED


def job_condition(job: Obj | None, type_: str) -> Obj | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _from_summary(summary: Obj) -> Obj:
    """The summary fields the status takes, validated by the status model."""
    keys = ("artifact", "dataset", "task", "bestEstimator", "metric", "score", "metrics", "leaderboard",
            "gates", "onnxMaxDelta", "startTime", "completionTime", "durationSeconds", "cpuSeconds")
    picked = {k: summary[k] for k in keys if summary.get(k) is not None}
    try:
        return TrainingJobStatus.model_validate(picked).model_dump(exclude_defaults=True)
    except ValidationError:
        return {}


def _failed(fields: Obj, reason: str, message: str, generation: int | None) -> list[Any]:
    fields.update(phase=TrainingPhase.FAILED, reason=reason, message=message)
    return [condition(FAILED, True, reason, message, generation=generation),
            condition(COMPLETE, False, reason, "", generation=generation)]


def _succeeded(fields: Obj, summary: Obj, search: SearchProgress | None, generation: int | None) -> list[Any]:
    fields.update(_from_summary(summary), phase=TrainingPhase.SUCCEEDED, reason=None, message=None)
    if search is not None:
        fields["search"] = search.model_dump()
    metric, score = summary.get("metric"), summary.get("score")
    text = f"Trained {summary.get('bestEstimator', 'a model')}"
    if metric is not None and score is not None:
        text += f": {metric}={score:.4g}"
    return [condition(COMPLETE, True, Reason.SUCCEEDED, text, generation=generation),
            condition(FAILED, False, Reason.SUCCEEDED, "", generation=generation)]


def _job_failed(fields: Obj, failed: Obj, termination: Termination | None, summary: Obj, job_name: str,
                generation: int | None) -> list[Any]:
    """The Job failed: the trainer's own reason, else its exit code's, else the Job's."""
    code = termination.code if termination else None
    reason = summary.get("reason") or (EXIT_REASONS.get(code, "TrainerFailed") if code is not None else None)
    reason = reason or failed.get("reason") or "JobFailed"
    message = summary.get("message") or failed.get("message") or "the trainer Job failed"
    if code is not None and not summary.get("message"):
        message = f"{message} (trainer exit code {code}); see `kubectl logs job/{job_name}`"
    fields.update(_from_summary(summary))
    conds = _failed(fields, reason, message, generation)
    if not fields.get("completion_time"):
        fields["completion_time"] = failed.get("lastTransitionTime") or (termination.finished_at if termination
                                                                         else None)
    return conds


def compute_status(
    current: TrainingJobStatus,
    generation: int | None,
    job_name: str,
    job: Obj | None,
    pods: list[Obj],
    now: datetime,
    *,
    model: str | None = None,
    parallelism: int = 1,
) -> TrainingJobStatus:
    """The whole new status from the trainer Job (or, fanned out, the refit Job) and its pods."""
    if is_finished(current):
        return current
    fields: Obj = {"job_name": job_name, "observed_generation": generation}
    termination = last_termination(pods)
    complete = job_condition(job, "Complete") or job_condition(job, "SuccessCriteriaMet")
    failed = job_condition(job, "Failed") or job_condition(job, "FailureTarget")
    summary = parse_summary(termination.message) if termination else {}
    oom = trainersearch.oom_killed(pods)

    if oom is not None and not complete:
        # The Job's podFailurePolicy fails it at once (exit 137); the status says why and what to raise.
        conds = _failed(fields, OOM_REASON, trainersearch.oom_message(oom[0], model, job_name), generation)
        fields["completion_time"] = (failed or {}).get("lastTransitionTime") or oom[1].finished_at or None
    elif complete and not (termination and termination.code == 0):
        # The Job finished but its pod (and the summary) is gone: nothing to serve.
        message = f"Job {job_name} completed but the trainer's summary is gone (pod deleted); retrain"
        conds = _failed(fields, "SummaryLost", message, generation)
    elif complete and termination:
        conds = _succeeded(fields, summary, trainersearch.from_summary(summary, parallelism, current.search),
                           generation)
    elif failed:
        conds = _job_failed(fields, failed, termination, summary, job_name, generation)
    elif job is not None and (((job.get("status") or {}).get("active") or 0) > 0 or termination):
        fields.update(phase=TrainingPhase.RUNNING)
        start = (job.get("status") or {}).get("startTime")
        if start and not current.start_time:  # a fanned-out run started with its search
            fields["start_time"] = start
        conds = [_running_condition(fields, current, generation, Reason.JOB_RUNNING, f"Job {job_name} is running",
                                    pods)]
    else:
        fields.update(phase=TrainingPhase.PENDING, reason=None, message=None)
        conds = [condition(COMPLETE, False, Reason.JOB_CREATED, f"Job {job_name} is starting",
                           generation=generation)]
    fields["conditions"] = [c.model_dump() for c in merge_conditions(current.conditions, conds, now)]
    return TrainingJobStatus.model_validate({**current.model_dump(), **fields})


def _running_condition(fields: Obj, current: TrainingJobStatus, generation: int | None, reason: str, message: str,
                       pods: list[Obj]) -> Any:
    """Complete=False for a running run: ``reason``/``message``, or PodNotStarting with the
    kubelet's own words while a pod waits on something only a person can fix (the status's
    reason and message say it too, and are cleared once the pod starts)."""
    previous = current.message if current.reason == Reason.POD_NOT_STARTING else None
    stuck = podstart.cannot_start(pods, previous)
    if stuck is None:
        fields.update(reason=None, message=None)
        return condition(COMPLETE, False, reason, message, generation=generation)
    text = podstart.message(stuck, previous)
    fields.update(reason=Reason.POD_NOT_STARTING, message=text)
    return condition(COMPLETE, False, Reason.POD_NOT_STARTING, text, generation=generation)


def compute_fanout_status(
    current: TrainingJobStatus,
    generation: int | None,
    spec: TrainingJobSpec,
    names: tuple[str, str],
    search_job: Obj | None,
    search_pods: list[Obj],
    refit_job: Obj | None,
    refit_pods: list[Obj],
    now: datetime,
    *,
    model: str | None = None,
) -> TrainingJobStatus:
    """The status of a fanned-out run: the search Job's progress, then the refit's outcome.

    ``names`` is (search Job, refit Job).
    """
    if is_finished(current):
        return current
    search_name, refit_name = names
    metric = trainersearch.selection_metric(spec)
    progress: SearchProgress = trainersearch.progress(spec, search_name, search_job, search_pods, current.search,
                                                      metric)
    if refit_job is not None or refit_pods:
        st = compute_status(current.model_copy(update={"search": progress}), generation, refit_name, refit_job,
                            refit_pods, now, model=model, parallelism=spec.search.parallelism)
        if st.phase == TrainingPhase.PENDING:  # the run as a whole is well under way
            st = _running(st, current, generation, REFITTING, f"Search done; refit Job {refit_name} is starting",
                          search_job, now, refit_pods)
        return st

    fields: Obj = {"job_name": refit_name, "observed_generation": generation, "search": progress.model_dump()}
    oom = trainersearch.oom_killed(search_pods)
    failure = trainersearch.search_failure(search_job, search_pods, search_name)
    if oom is not None and not trainersearch.is_complete(search_job):
        # refit_name is the TrainingJob's own name (the refit Job is named after it).
        conds = _failed(fields, OOM_REASON, trainersearch.oom_message(oom[0], model, refit_name), generation)
        fields["completion_time"] = oom[1].finished_at or None
    elif failure is not None:
        reason, message, _ = failure
        conds = _failed(fields, reason, message, generation)
        fields["completion_time"] = (job_condition(search_job, "Failed") or {}).get("lastTransitionTime")
    elif search_job is not None and (trainersearch.is_complete(search_job)
                                     or ((search_job.get("status") or {}).get("active") or 0) > 0
                                     or any(i.phase.value != "Pending" for i in progress.indexes)):
        done = trainersearch.is_complete(search_job)
        message = (f"Search done ({progress.progress} cells); creating refit Job {refit_name}" if done
                   else f"Search Job {search_name}: {progress.progress} cells scored by "
                        f"{spec.search.parallelism} pods")
        return _running(TrainingJobStatus.model_validate({**current.model_dump(), **fields}), current, generation,
                        REFITTING if done else SEARCHING, message, search_job, now, [] if done else search_pods)
    else:
        fields.update(phase=TrainingPhase.PENDING, reason=None, message=None)
        conds = [condition(COMPLETE, False, Reason.JOB_CREATED, f"Search Job {search_name} is starting",
                           generation=generation)]
    fields["conditions"] = [c.model_dump() for c in merge_conditions(current.conditions, conds, now)]
    return TrainingJobStatus.model_validate({**current.model_dump(), **fields})


def _running(st: TrainingJobStatus, current: TrainingJobStatus, generation: int | None, reason: str, message: str,
             search_job: Obj | None, now: datetime, pods: list[Obj]) -> TrainingJobStatus:
    start = current.start_time or ((search_job or {}).get("status") or {}).get("startTime")
    fields: Obj = {}
    cond = _running_condition(fields, current, generation, reason, message, pods)
    conds = merge_conditions(current.conditions, [cond], now)
    return st.model_copy(update={"phase": TrainingPhase.RUNNING, "start_time": start, "conditions": conds,
                                 **fields})
