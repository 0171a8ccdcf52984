"""A TrainingJob's status, computed whole from what is observed.

Inputs are the batch Job and its pods as dicts (as the API returns them);
the trainer's one-line JSON summary arrives in the terminated container's
termination message. The output is the complete new status: the controller
diffs it against the stored one and patches only on change. A finished
TrainingJob (Succeeded or Failed) keeps its status for good.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelship.api.trainingjob import TrainingJobStatus, TrainingPhase
from modelship.logic.conditions import COMPLETE, FAILED, Reason, condition, merge_conditions

Obj = dict[str, Any]

# Exit codes of modelship-train (modelship_runtime.training.cli) → reasons.
EXIT_REASONS = {
    1: "InternalError",
    2: "InvalidSpec",
    3: "InvalidData",
    4: "GateFailed",
    5: "StoreError",
}
FINISHED = {TrainingPhase.SUCCEEDED, TrainingPhase.FAILED}


def is_finished(status: TrainingJobStatus) -> bool:
    return status.phase in FINISHED


def job_condition(job: Obj | None, type_: str) -> Obj | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def last_termination(pods: list[Obj]) -> tuple[int, str, str] | None:
    """(exit code, message, finishedAt) of the most recently finished trainer container."""
    found: list[tuple[str, int, str]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != "trainer":
                continue
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                term = state.get("terminated")
                if term:
                    found.append((term.get("finishedAt") or "", int(term.get("exitCode", 1)),
                                  term.get("message") or ""))
    if not found:
        return None
    finished_at, code, message = max(found)
    return code, message, finished_at


def parse_summary(message: str) -> Obj:
    """The trainer's summary from a termination message; {} when it is not one."""
    try:
        data = json.loads(message.strip().splitlines()[-1]) if message.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def _from_summary(summary: Obj) -> Obj:
    """The summary fields the status takes, validated by the status model."""
    keys = ("artifact", "dataset", "task", "bestEstimator", "metric", "score", "metrics", "leaderboard",
            "gates", "onnxMaxDelta", "startTime", "completionTime", "durationSeconds", "cpuSeconds")
    picked = {k: summary[k] for k in keys if summary.get(k) is not None}
    try:
        return TrainingJobStatus.model_validate(picked).model_dump(exclude_defaults=True)
    except ValidationError:
        return {}


def compute_status(
    current: TrainingJobStatus,
    generation: int | None,
    job_name: str,
    job: Obj | None,
    pods: list[Obj],
    now: datetime,
) -> TrainingJobStatus:
    """The whole new status from the Job and its pods."""
    if is_finished(current):
        return current
    fields: Obj = {"job_name": job_name, "observed_generation": generation}
    termination = last_termination(pods)
    complete = job_condition(job, "Complete") or job_condition(job, "SuccessCriteriaMet")
    failed = job_condition(job, "Failed") or job_condition(job, "FailureTarget")
    summary = parse_summary(termination[1]) if termination else {}

    if complete and not (termination and termination[0] == 0):
        # The Job finished but its pod (and the summary) is gone: nothing to serve.
        message = f"Job {job_name} completed but the trainer's summary is gone (pod deleted); retrain"
        fields.update(phase=TrainingPhase.FAILED, reason="SummaryLost", message=message)
        conds = [condition(FAILED, True, "SummaryLost", message, generation=generation),
                 condition(COMPLETE, False, "SummaryLost", "", generation=generation)]
    elif complete and termination:
        fields.update(_from_summary(summary), phase=TrainingPhase.SUCCEEDED, reason=None, message=None)
        metric, score = summary.get("metric"), summary.get("score")
        text = f"Trained {summary.get('bestEstimator', 'a model')}"
        if metric is not None and score is not None:
            text += f": {metric}={score:.4g}"
        conds = [condition(COMPLETE, True, Reason.SUCCEEDED, text, generation=generation),
                 condition(FAILED, False, Reason.SUCCEEDED, "", generation=generation)]
    elif failed:
        code = termination[0] if termination else None
        reason = summary.get("reason") or (EXIT_REASONS.get(code, "TrainerFailed") if code is not None else None)
        reason = reason or failed.get("reason") or "JobFailed"
        message = summary.get("message") or failed.get("message") or "the trainer Job failed"
        if code is not None and not summary.get("message"):
            message = f"{message} (trainer exit code {code}); see `kubectl logs job/{job_name}`"
        fields.update(_from_summary(summary), phase=TrainingPhase.FAILED, reason=reason, message=message)
        if not fields.get("completion_time"):
            fields["completion_time"] = failed.get("lastTransitionTime") or (termination[2] if termination else None)
        conds = [condition(FAILED, True, reason, message, generation=generation),
                 condition(COMPLETE, False, reason, "", generation=generation)]
    elif job is not None and (((job.get("status") or {}).get("active") or 0) > 0 or termination):
        fields.update(phase=TrainingPhase.RUNNING)
        start = (job.get("status") or {}).get("startTime")
        if start:
            fields["start_time"] = start
        conds = [condition(COMPLETE, False, Reason.JOB_RUNNING, f"Job {job_name} is running",
                           generation=generation)]
    else:
        fields.update(phase=TrainingPhase.PENDING)
        conds = [condition(COMPLETE, False, Reason.JOB_CREATED, f"Job {job_name} is starting",
                           generation=generation)]
    fields["conditions"] = [c.model_dump() for c in merge_conditions(current.conditions, conds, now)]
    return TrainingJobStatus.model_validate({**current.model_dump(), **fields})
