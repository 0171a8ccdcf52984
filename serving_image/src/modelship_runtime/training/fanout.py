"""A search fanned out over N processes, then one refit: the two phases of an Indexed Job search.

``run_share`` is one pod of the Indexed Job: it prepares the data exactly as
the single-process trainer does (same holdout, same folds, same settings),
scores its round-robin share of the cells (``cells``) and writes them once
to the store (``scores``). ``run_refit`` is the Job that follows: it prepares
the same way, gathers every share's cells, checks they cover the search, and
hands them to the same ``search.collect`` / ``search.refit`` / ``train.finish``
the single-process trainer ends in. So the leaderboard, the chosen setting
and the ``model.onnx`` bytes are those of ``train.run`` on the same spec.

Each share's summary (its termination message) carries its progress for the
operator, which never reads the store: cells scored and, per setting it
touched, the sum and count of its fold scores, from which the operator
combines a best-so-far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modelship.api.trainingjob import TrainingJobSpec
from modelship_runtime.artifacts import store
from modelship_runtime.training import cells, scores, search, train
from modelship_runtime.training.errors import SpecError

Log = Callable[[str], None]
SCORES_DIR = "search"
INDEX_ENV = "JOB_COMPLETION_INDEX"
# Per-setting partial sums in a share's termination message (the message is
# under 4 KiB): the best this many settings by partial mean.
PARTIAL_SETTINGS = 60


def default_scores_uri(output_uri: str) -> str:
    return store.join(output_uri, SCORES_DIR) + "/"


def _parse_iso(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _prepared_search(spec: TrainingJobSpec, output_uri: str | None, shares: int, log: Log) -> tuple[
        train.Prepared, list[search.Setting], str | None, cells.Folds, scores.ShareReport]:
    if shares < 1:
        raise SpecError(f"--shares {shares}: a search has at least one share")
    p = train.prepare(spec, output_uri, log)
    allowed, stopped_by = search.budgeted(p.settings, spec.search)
    folds = cells.fold_indices(p.X_train, p.y_train, p.classification, spec.search.cv_folds, spec.search.seed)
    header = scores.ShareReport(
        index=0, shares=shares, spec_hash=train.spec_hash(spec), dataset_sha256=p.loaded.sha256,
        settings=len(allowed), folds=len(folds), max_seconds=spec.search.max_seconds,
    )
    return p, allowed, stopped_by, folds, header


def share_summary(report: scores.ShareReport, metric: str) -> dict[str, Any]:
    """What the operator shows while the search runs (cells done, a best-so-far)."""
    sums: dict[int, list[float]] = {}
    failed: set[int] = set()
    for c in report.cells:
        if c.error is not None or c.after_failure or c.score is None:
            failed.add(c.setting)
            continue
        acc = sums.setdefault(c.setting, [0.0, 0])
        acc[0] += c.score
        acc[1] += 1
    partial = sorted(((s, v[0], int(v[1])) for s, v in sums.items() if s not in failed),
                     key=lambda t: (-t[1] / t[2], t[0]))[:PARTIAL_SETTINGS]
    return {
        "phase": "search",
        "index": report.index,
        "shares": report.shares,
        "settings": report.settings,
        "folds": report.folds,
        "cellsTotal": report.settings * report.folds,
        "cellsDone": len(report.cells),
        "cellsSkipped": len(report.skipped),
        "cellErrors": sum(1 for c in report.cells if c.error is not None),
        "metric": metric,
        # [setting, sum of fold scores, folds] in scikit-learn's sign (higher is better).
        "partial": [[s, round(total, 12), n] for s, total, n in partial],
        "startToFirstCellSeconds": report.start_to_first_cell_seconds,
        "startedAt": report.started_at,
        "firstCellAt": report.first_cell_at,
        "searchEndAt": report.finished_at,
        "wallSeconds": report.wall_seconds,
        "cpuSeconds": report.cpu_seconds,
        "passed": True,
    }


def run_share(
    spec: TrainingJobSpec, output_uri: str | None, index: int, shares: int, scores_uri: str | None,
    log: Log = train._stderr,
) -> dict[str, Any]:
    """Score share ``index`` of ``shares`` and write it once under ``scores_uri``; returns the summary."""
    if not 0 <= index < shares:
        raise SpecError(f"--index {index}: a search of {shares} shares has indexes 0 to {shares - 1}")
    cpu0 = time.process_time()
    p, allowed, _, folds, header = _prepared_search(spec, output_uri, shares, log)
    target = scores_uri or default_scores_uri(p.uri)
    header = header.model_copy(update={"index": index})
    existing = scores.read(target, index, shares)
    if existing is not None:
        scores.check_same(existing, header, scores.share_uri(target, index, shares))
        log(f"Reused the scores share {index} of {shares} wrote before ({len(existing.cells)} cells)")
        return share_summary(existing, str(p.metric))
    mine = cells.share(cells.enumerate_cells(len(allowed), len(folds)), index, shares)
    log(f"Scoring share {index} of {shares}: {len(mine)} of {len(allowed) * len(folds)} cells "
        f"({len(allowed)} settings x {len(folds)} folds)")
    first_cell, first_cell_at = time.monotonic(), time.time()
    results, skipped = cells.evaluate(
        mine, [s.pipeline for s in allowed], p.X_train, p.y_train, folds, p.score_fn, p.weights,
        deadline=first_cell + spec.search.max_seconds,
    )
    report = header.model_copy(update={
        "cells": scores.cells_of(results),
        "skipped": [(c.setting, c.fold) for c in skipped],
        "started_at": train.iso_ms(p.started_wall - p.process_age),
        "first_cell_at": train.iso_ms(first_cell_at),
        "finished_at": train.iso_ms(time.time()),
        "start_to_first_cell_seconds": round(p.process_age + first_cell - p.started, 3),
        "wall_seconds": round(p.process_age + time.monotonic() - p.started, 3),
        "cpu_seconds": round(time.process_time() - cpu0, 3),
        "versions": train._versions(),
    })
    scores.write_once(target, report)
    log(f"Scored {len(results)} cells in {time.monotonic() - first_cell:.1f} s"
        + (f"; {len(skipped)} left for maxSeconds ({spec.search.max_seconds})" if skipped else "")
        + f"; wrote {scores.share_uri(target, index, shares)}")
    return share_summary(report, str(p.metric))


def run_refit(
    spec: TrainingJobSpec, output_uri: str | None, shares: int, scores_uri: str | None, log: Log = train._stderr,
) -> train.Result:
    """Gather every share's cells, pick the best setting, refit and finish as ``train.run`` does."""
    p, allowed, stopped_by, folds, header = _prepared_search(spec, output_uri, shares, log)
    target = scores_uri or default_scores_uri(p.uri)
    reports = scores.gather(target, shares, header)
    results = [r for report in reports for r in report.results()]
    skipped = sum(len(r.skipped) for r in reports)
    if skipped:
        stopped_by = f"maxSeconds ({spec.search.max_seconds})"
    trials, kept, stopped_by = search.collect(allowed, len(folds), results, stopped_by)
    t0 = time.monotonic()
    found = search.refit(allowed, trials, kept, p.X_train, p.y_train, stopped_by, p.weights)
    train.log_search(found, len(p.settings), time.monotonic() - t0, log)
    starts = [t for r in reports if (t := _parse_iso(r.started_at)) is not None]
    earliest = min(starts) if starts else p.started_wall
    result = train.finish(
        p, found, log,
        start_time=datetime.fromtimestamp(earliest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        extra_cpu_seconds=sum(r.cpu_seconds for r in reports),
        extra_wall_seconds=max(0.0, p.started_wall - earliest),
    )
    summary = train.search_summary(spec, found, len(p.settings), shares=shares)
    summary["cellsDone"] = header.settings * header.folds - skipped
    result.summary["search"] = summary
    return result
