"""A fanned-out search as the operator sees it: the Indexed Job, its pods, their termination messages.

The operator never reads the artifact store. What it knows of the search
comes from the API: the Job's ``completedIndexes`` / ``failedIndexes`` and
each pod's trainer container (exit code, termination reason, and the
one-line summary a share writes as its termination message: cells scored and
per-setting partial sums of fold scores). From these it computes the
per-index outcome, cells done / total and the best fully scored setting so
far. All of it is pure; nothing here raises on odd input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelship.api.trainingjob import (
    LOWER_IS_BETTER,
    IndexPhase,
    Metric,
    SearchIndex,
    SearchProgress,
    SearchStrategy,
    TrainingJobSpec,
)

Obj = dict[str, Any]
CONTAINER = "trainer"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
OOM_REASON = "OOMKilled"
TERMINATED_EXIT_CODE = 143
DISRUPTED = "Disrupted"
# Exit codes of modelship-train (modelship_runtime.training.cli) → reasons.
EXIT_REASONS = {
    1: "InternalError",
    2: "InvalidSpec",
    3: "InvalidData",
    4: "GateFailed",
    5: "StoreError",
    137: "Killed",
    143: "Terminated",
}


@dataclass(frozen=True)
class Termination:
    """How a trainer container ended: exit code, termination reason and message, when."""

    code: int
    message: str
    finished_at: str
    reason: str = ""

    @property
    def oom_killed(self) -> bool:
        return self.reason == OOM_REASON


def terminations(pod: Obj) -> list[Termination]:
    """The trainer container's terminated states in a pod (current and last)."""
    out: list[Termination] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") != CONTAINER:
            continue
        for state in (cs.get("state") or {}, cs.get("lastState") or {}):
            term = state.get("terminated")
            if term:
                try:
                    code = int(term.get("exitCode", 1))
                except (TypeError, ValueError):
                    code = 1
                out.append(Termination(code, term.get("message") or "", term.get("finishedAt") or "",
                                       term.get("reason") or ""))
    return out


def last_termination(pods: Iterable[Obj]) -> Termination | None:
    """The most recently finished trainer container among ``pods``."""
    found = [t for pod in pods for t in terminations(pod)]
    return max(found, key=lambda t: (t.finished_at, t.code)) if found else None


def oom_killed(pods: Iterable[Obj]) -> tuple[Obj, Termination] | None:
    """A pod whose trainer the kernel killed for memory, with that termination."""
    for pod in pods:
        for term in terminations(pod):
            if term.oom_killed:
                return pod, term
    return None


def memory_limit(pod: Obj) -> str | None:
    """The trainer container's memory limit as the pod ran with it."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == CONTAINER:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit else None
    return None


def oom_message(pod: Obj, model: str | None, training_job: str) -> str:
    """What to raise, and where: the Model's training template or the TrainingJob itself."""
    limit = memory_limit(pod)
    name = (pod.get("metadata") or {}).get("name", "?")
    where = (f"spec.training.resources.limits.memory of Model {model}" if model
             else f"spec.resources.limits.memory of TrainingJob {training_job}")
    at = f"its memory limit of {limit}" if limit else "the node's memory (no limit set)"
    return (f"The trainer (pod {name}) was killed for using more than {at}; it was not retried, since "
            f"the same limit would kill it again. Raise {where}, or train on fewer rows or a smaller grid")


def parse_summary(message: str) -> Obj:
    """The trainer's summary from a termination message; {} when it is not one."""
    try:
        data = json.loads(message.strip().splitlines()[-1]) if message.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_indexes(text: str | None) -> set[int]:
    """``completedIndexes`` / ``failedIndexes`` ("1,3-5") as a set; junk is ignored."""
    out: set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(range(first, min(last, first + 100_000) + 1))
    return out


def pod_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    raw = (meta.get("labels") or {}).get(INDEX_LABEL) or (meta.get("annotations") or {}).get(INDEX_LABEL)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def disrupted(pod: Obj) -> bool:
    """Not the trainer's failure: Kubernetes marked it (eviction, preemption, node lost) or the pod
    was deleted (the trainer exits 143 on SIGTERM). The Job's podFailurePolicy ignores both."""
    if any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
           for c in (pod.get("status") or {}).get("conditions") or []):
        return True
    term = last_termination([pod])
    return term is not None and term.code == TERMINATED_EXIT_CODE


def failure_reason(pod: Obj) -> str:
    """Why a failed pod failed, as a status reason."""
    term = last_termination([pod])
    if term is not None and term.code == TERMINATED_EXIT_CODE:
        return "Terminated"
    if disrupted(pod):
        return DISRUPTED
    if term is None:
        return "PodFailed"
    if term.oom_killed:
        return OOM_REASON
    return str(parse_summary(term.message).get("reason") or EXIT_REASONS.get(term.code, f"ExitCode{term.code}"))


def planned_cells(spec: TrainingJobSpec) -> int | None:
    """Cells in a grid search, known from the spec alone; None for random search (sampled)."""
    if spec.search.strategy != SearchStrategy.GRID:
        return None
    settings = 0
    for cand in spec.candidates:
        if cand.distributions:
            return None  # the trainer refuses it; no total to show
        n = 1
        for values in cand.params.values():
            n *= len(values)
        settings += n
    return min(settings, spec.search.max_fits) * spec.search.cv_folds


def metric_units(score: float, metric: str | None) -> float:
    """A scikit-learn score (higher is better) in the metric's own units (rmse is positive)."""
    return -score if metric in LOWER_IS_BETTER else score


def _better(a: float, b: float | None, metric: str | None) -> bool:
    if b is None:
        return True
    return a < b if metric in LOWER_IS_BETTER else a > b


def best_so_far(summaries: Sequence[Obj], folds: int) -> float | None:
    """Best mean CV score (scikit-learn sign) over settings whose every fold is in ``summaries``.

    Each share reports [setting, sum, count] for up to 60 of its settings;
    a setting counts once its counts add up to the number of folds.
    """
    totals: dict[int, list[float]] = {}
    for summary in summaries:
        for entry in summary.get("partial") or []:
            try:
                setting, total, count = int(entry[0]), float(entry[1]), int(entry[2])
            except (TypeError, ValueError, IndexError):
                continue
            acc = totals.setdefault(setting, [0.0, 0])
            acc[0] += total
            acc[1] += count
    means = [acc[0] / acc[1] for acc in totals.values() if acc[1] == folds and folds > 0]
    return max(means) if means else None


def _job_status(job: Obj | None) -> Obj:
    return dict((job or {}).get("status") or {})


def index_outcomes(shares: int, job: Obj | None, pods: Sequence[Obj],
                   previous: Sequence[SearchIndex] = ()) -> tuple[list[SearchIndex], dict[int, Obj]]:
    """Per index: phase, failed attempts, last failure reason, cells; and each succeeded share's summary.

    An index once recorded Succeeded stays so (its pod may be gone by now).
    """
    status = _job_status(job)
    completed = parse_indexes(status.get("completedIndexes"))
    failed_for_good = parse_indexes(status.get("failedIndexes"))
    before = {i.index: i for i in previous}
    by_index: dict[int, list[Obj]] = {}
    for pod in pods:
        i = pod_index(pod)
        if i is not None and 0 <= i < shares:
            by_index.setdefault(i, []).append(pod)
    out: list[SearchIndex] = []
    summaries: dict[int, Obj] = {}
    for i in range(shares):
        mine = by_index.get(i, [])
        failed = [p for p in mine if (p.get("status") or {}).get("phase") == "Failed"]
        won = [p for p in mine if (p.get("status") or {}).get("phase") == "Succeeded"]
        prev = before.get(i)
        failures = max(len([p for p in failed if not disrupted(p)]), prev.failures if prev else 0)
        reason = failure_reason(max(failed, key=_finished_at)) if failed else (prev.reason if prev else None)
        cells = prev.cells if prev else None
        if won:
            term = last_termination(won)
            summary = parse_summary(term.message) if term else {}
            if summary:
                summaries[i] = summary
                cells = int(summary.get("cellsDone") or 0)
        if won or i in completed or (prev is not None and prev.phase == IndexPhase.SUCCEEDED):
            phase = IndexPhase.SUCCEEDED
        elif i in failed_for_good:
            phase = IndexPhase.FAILED
        elif any((p.get("status") or {}).get("phase") == "Running" for p in mine):
            phase = IndexPhase.RUNNING
        else:
            phase = IndexPhase.PENDING
        out.append(SearchIndex(index=i, phase=phase, cells=cells, failures=failures, reason=reason))
    return out, summaries


def _finished_at(pod: Obj) -> str:
    term = last_termination([pod])
    return term.finished_at if term else ""


def progress(spec: TrainingJobSpec, job_name: str, job: Obj | None, pods: Sequence[Obj],
             previous: SearchProgress | None, metric: str | None) -> SearchProgress:
    """The search's progress for the status, never going backwards."""
    shares = spec.search.parallelism
    indexes, summaries = index_outcomes(shares, job, pods, previous.indexes if previous else ())
    metric = next((str(s["metric"]) for s in summaries.values() if s.get("metric")), metric)
    total = next((int(s["cellsTotal"]) for s in summaries.values() if s.get("cellsTotal") is not None),
                 None) or (previous.cells_total if previous else None) or planned_cells(spec)
    done = sum(i.cells or 0 for i in indexes)
    best = best_so_far(list(summaries.values()), spec.search.cv_folds)
    best_units = metric_units(best, metric) if best is not None else None
    prev_best = previous.best_score if previous else None
    if best_units is None or (prev_best is not None and not _better(best_units, prev_best, metric)):
        best_units = prev_best
    skipped = sum(int(s.get("cellsSkipped") or 0) for s in summaries.values())
    return SearchProgress(
        parallelism=shares, job_name=job_name, cells_done=done, cells_total=total,
        progress=f"{done}/{total if total is not None else '?'}",
        best_score=round(best_units, 6) if best_units is not None else None,
        stopped_by=f"maxSeconds ({spec.search.max_seconds})" if skipped else (previous.stopped_by if previous else None),
        indexes=indexes,
    )


def from_summary(summary: Obj, parallelism: int, previous: SearchProgress | None) -> SearchProgress | None:
    """The final progress from a trainer's (or refit's) summary: its ``search`` block and leaderboard."""
    block = summary.get("search")
    if not isinstance(block, dict):
        return previous
    board = summary.get("leaderboard") or []
    best = board[0].get("score") if board and isinstance(board[0], dict) else None
    metric = summary.get("metric")
    try:
        done, total = int(block.get("cellsDone") or 0), int(block.get("cellsTotal") or 0)
    except (TypeError, ValueError):
        return previous
    return SearchProgress(
        parallelism=parallelism, job_name=previous.job_name if previous else None,
        cells_done=done, cells_total=total, progress=f"{done}/{total}",
        best_score=round(metric_units(float(best), metric), 6) if isinstance(best, int | float) else None,
        stopped_by=block.get("stoppedBy"), indexes=list(previous.indexes) if previous else [],
    )


def search_failure(job: Obj | None, pods: Sequence[Obj], job_name: str) -> tuple[str, str, Obj | None] | None:
    """(reason, message, the pod to blame) when the search Job has failed; None otherwise."""
    cond = next((c for c in _job_status(job).get("conditions") or []
                 if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True"), None)
    if cond is None:
        return None
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed" and not disrupted(p)]
    oom = oom_killed(failed)
    if oom is not None:
        return OOM_REASON, "", oom[0]
    # A permanent failure (bad spec, bad data) ended it; else the last failure.
    permanent = [p for p in failed if (last_termination([p]) or Termination(0, "", "")).code in (2, 3)]
    blame = min(permanent, key=_finished_at) if permanent else (max(failed, key=_finished_at) if failed else None)
    if blame is not None:
        term = last_termination([blame])
        summary = parse_summary(term.message) if term else {}
        reason = failure_reason(blame)
        index = pod_index(blame)
        text = summary.get("message") or (f"exit code {term.code}" if term else "the pod failed")
        return reason, f"Search index {index} failed: {text}; see `kubectl logs {(blame.get('metadata') or {}).get('name', '')}`", blame
    reason = str(cond.get("reason") or "JobFailed")
    message = str(cond.get("message") or "the search Job failed")
    if reason == "DeadlineExceeded":
        message = (f"The search Job {job_name} ran past its deadline (search.maxSeconds plus time to start "
                   f"and finish the settings in flight); raise search.maxSeconds or shrink the grid")
    return reason, message, None


def is_complete(job: Obj | None) -> bool:
    return any(c.get("type") in ("Complete", "SuccessCriteriaMet") and c.get("status") == "True"
               for c in _job_status(job).get("conditions") or [])


def selection_metric(spec: TrainingJobSpec) -> str | None:
    """The selection metric when the spec names one (else the trainer picks accuracy or r2)."""
    return str(Metric(spec.metric)) if spec.metric else None
