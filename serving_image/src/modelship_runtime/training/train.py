"""One training run: data → pipeline → search → ONNX → gates → artifact.

``run`` is the whole trainer without the command line: it takes a parsed
spec and returns the summary; failures raise the kinds in ``errors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from modelship.api.trainingjob import FairnessMitigation, Metric, Task, TrainingJobSpec
from modelship_runtime.artifacts import store
from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.training import (
    convert,
    data,
    explain,
    fairness,
    gates,
    groundtruth_hooks,
    reference,
    registry,
    search,
)
from modelship_runtime.training import metrics as holdout_metrics
from modelship_runtime.training.errors import SpecError, StoreError
from modelship_runtime.training.pipeline import build_pipeline

LEADERBOARD_SIZE = 10
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Result:
    summary: dict[str, Any]
    passed: bool
    metadata: Metadata | None = None
    model_bytes: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


def spec_hash(spec: TrainingJobSpec) -> str:
    """sha256 of the spec as trained: how many pods scored the search is not part of it."""
    wire = spec.wire()
    wire.get("search", {}).pop("parallelism", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _versions() -> dict[str, str]:
    out: dict[str, str] = {"python": sys.version.split()[0]}
    for dist in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "fairlearn", "modelship"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Prepared:
    """Everything the search and the refit need, made the same way in every process."""

    spec: TrainingJobSpec
    uri: str
    loaded: data.LoadedData
    prep: data.Prepared
    task: Task
    classification: bool
    metric: Metric
    X_train: Any
    X_hold: Any
    y_train: Any
    y_hold: Any
    s_hold: Any
    weights: np.ndarray[Any, Any] | None
    settings: list[search.Setting]
    score_fn: Any
    started: float
    start_time: str
    cpu0: float
    started_wall: float
    process_age: float = 0.0  # seconds the process had run when prepare() began


def prepare(spec: TrainingJobSpec, output_uri: str | None, log: Log = _stderr) -> Prepared:
    """Load and check the data, split off the holdout and plan the settings (spec errors up front)."""
    started, start_time, cpu0, started_wall = time.monotonic(), _now(), time.process_time(), time.time()
    age = process_age_seconds()
    uri = output_uri or spec.output_uri
    if not uri:
        raise SpecError("no artifact location: pass --output URI or set spec.outputUri")
    if not uri.startswith(("file://", "s3://")):
        raise SpecError(f"output {uri}: artifacts go to file:// or s3://")
    seed = spec.search.seed
    ds = spec.dataset
    if spec.gates.fairness is not None and not ds.sensitive_feature:
        raise SpecError("gates.fairness needs dataset.sensitiveFeature")
    mitigation = spec.gates.fairness is not None and (
        FairnessMitigation(spec.gates.fairness.mitigation) == FairnessMitigation.REWEIGHING
    )

    # Ground truth: dataset.production trains on labelled production rows (groundtruth.production).
    loaded = groundtruth_hooks.load_dataset(ds, uri, log)
    log(f"Loaded {loaded.rows} rows from {loaded.uri or ds.uri} (sha256 {loaded.sha256[:12]})")
    prep = data.prepare(loaded.frame, ds, Task(spec.task), spec.search.cv_folds, spec.search.holdout_ratio)
    task = Task(prep.task)
    classification = task != Task.REGRESSION
    metric = Metric(spec.metric) if spec.metric else (Metric.ACCURACY if classification else Metric.R2)
    search.check_metric(metric, classification)
    if spec.gates.fairness is not None and task != Task.BINARY:
        raise SpecError(f"fairness gates need a binary classification task; this one is {task}")
    log(
        f"Prepared {len(prep.X.columns)} features ({len(prep.numeric)} numeric, "
        f"{len(prep.categorical)} categorical) for {task}, selecting by {metric}"
    )

    parts = train_test_split(
        prep.X,
        prep.y,
        *([prep.sensitive] if prep.sensitive is not None else []),
        test_size=spec.search.holdout_ratio,
        random_state=seed,
        stratify=prep.y if classification else None,
    )
    X_train, X_hold, y_train, y_hold = parts[:4]
    s_train, s_hold = (parts[4], parts[5]) if prep.sensitive is not None else (None, None)
    weights = fairness.reweighing(y_train, s_train) if mitigation and s_train is not None else None

    def make_pipeline(name: str, estimator: Any) -> Any:
        float32 = registry.lookup(name).onnx_float32(classification)
        return build_pipeline(spec.pipeline, prep.numeric, prep.categorical, estimator, seed, float32)

    settings = search.plan(
        spec.candidates, spec.search, classification, make_pipeline, weighted=weights is not None
    )
    return Prepared(
        spec=spec, uri=uri, loaded=loaded, prep=prep, task=task, classification=classification, metric=metric,
        X_train=X_train, X_hold=X_hold, y_train=y_train, y_hold=y_hold, s_hold=s_hold, weights=weights,
        settings=settings, score_fn=search.scorer(metric, prep.classes),
        started=started, start_time=start_time, cpu0=cpu0, started_wall=started_wall, process_age=age,
    )


def run(spec: TrainingJobSpec, output_uri: str | None, log: Log = _stderr) -> Result:
    """Train, check and write the artifact; the summary mirrors TrainingJob status keys."""
    p = prepare(spec, output_uri, log)
    t0, first_cell_at = time.monotonic(), time.time()
    found = search.run(p.settings, p.X_train, p.y_train, spec.search, p.score_fn, p.classification, p.weights)
    search_end_at = time.time()
    log_search(found, len(p.settings), time.monotonic() - t0, log)
    result = finish(p, found, log)
    result.summary["search"] = {
        **search_summary(spec, found, len(p.settings), shares=1),
        # Wall clock (ms) of this process's start, its first cell and its last: what the
        # fan-out bench compares with a search's shares.
        "startedAt": iso_ms(p.started_wall - p.process_age),
        "firstCellAt": iso_ms(first_cell_at),
        "searchEndAt": iso_ms(search_end_at),
    }
    return result


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def process_age_seconds() -> float:
    """Seconds since this process started (Linux /proc; 0 elsewhere): start-up counts as overhead."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def search_summary(spec: TrainingJobSpec, found: search.SearchResult, planned: int, shares: int) -> dict[str, Any]:
    """The search's size for the status (cells done / total), whichever way it ran."""
    settings = min(planned, spec.search.max_fits)
    folds = spec.search.cv_folds
    return {"shares": shares, "settings": settings, "folds": folds, "cellsTotal": settings * folds,
            "cellsDone": len(found.trials) * folds, "stoppedBy": found.stopped_by}


def log_search(found: search.SearchResult, planned: int, seconds: float, log: Log) -> None:
    log(
        f"Searched {len(found.trials)} of {planned} settings in {seconds:.1f} s"
        + (f" (stopped by {found.stopped_by})" if found.stopped_by else "")
        + f": best {found.best.estimator} {found.best.params} cv {found.best.score:.4g}"
    )
    failed = [t for t in found.trials if t.error]
    for trial in failed[:3]:
        log(f"Skipped {trial.estimator} {trial.params}: {trial.error}")


def finish(
    p: Prepared,
    found: search.SearchResult,
    log: Log = _stderr,
    *,
    start_time: str | None = None,
    extra_cpu_seconds: float = 0.0,
    extra_wall_seconds: float = 0.0,
) -> Result:
    """ONNX, parity, holdout metrics, gates, importance and reference; writes the artifact.

    A fanned-out search passes what its shares spent, so the summary covers
    the whole run and not the refit alone.
    """
    spec, uri, seed, ds = p.spec, p.uri, p.spec.search.seed, p.spec.dataset
    loaded, prep, task, classification, metric = p.loaded, p.prep, p.task, p.classification, p.metric
    X_train, X_hold, y_hold, s_hold = p.X_train, p.X_hold, p.y_hold, p.s_hold
    score_fn, started, cpu0 = p.score_fn, p.started, p.cpu0
    pipeline = found.best_pipeline
    converted = convert.to_onnx(pipeline, prep.numeric, prep.categorical, classification, name=spec.model_ref.name if spec.model_ref else "model")
    model_bytes = converted.bytes()
    sess = convert.session(model_bytes)
    tensor_input = convert.TENSOR_INPUT if converted.input_mode == "tensor" else None
    hold_pred = convert.predict(sess, convert.feeds(X_hold, converted.features, converted.input_mode, tensor_input), converted.outputs)
    parity = convert.parity(pipeline, X_hold, hold_pred, classification)
    values = (
        holdout_metrics.classification(y_hold, hold_pred, prep.classes or [])
        if classification
        else holdout_metrics.regression(y_hold, hold_pred)
    )
    score = values.get(str(metric))
    log(f"Converted to ONNX ({len(model_bytes)} bytes): max delta {parity.max_delta:.3g}; holdout {metric} {score}")

    results = [gates.onnx_parity(parity, spec.gates.max_onnx_delta, len(X_hold))]
    results += [gates.threshold(rule, values) for rule in spec.gates.thresholds]
    champion_gate, champion_score = gates.champion(
        spec.gates, spec.champion_uri, str(metric), score, X_hold, y_hold, prep.classes
    )
    if champion_gate is not None:
        results.append(champion_gate)
    fair_report = None
    if s_hold is not None and task == Task.BINARY and prep.classes:
        fair_report = fairness.measure(y_hold, hold_pred.labels, s_hold, prep.classes[-1])
        if spec.gates.fairness is not None:
            results.append(gates.fairness(spec.gates, fair_report))
    passed = all(g.passed for g in results)
    for g in results:
        log(f"{'Passed' if g.passed else 'Failed'} gate {g.name}: {g.message}")

    importances = explain.importance(pipeline, X_hold, y_hold, score_fn, seed)
    train_pred = convert.predict(sess, convert.feeds(X_train, converted.features, converted.input_mode, tensor_input), converted.outputs)
    ref = reference.build(
        X_train, prep.numeric, prep.categorical,
        train_pred.labels if classification else train_pred.values, prep.classes,
    )
    digest = store.sha256_hex(model_bytes)
    leaderboard = found.leaderboard(LEADERBOARD_SIZE)
    meta = Metadata(
        model_name=spec.model_ref.name if spec.model_ref else "model",
        model_version=digest[:12],
        task=str(task),  # type: ignore[arg-type]
        features=converted.features,
        input_mode=converted.input_mode,
        tensor_input=tensor_input,
        tensor_dtype="double" if tensor_input else None,
        outputs=converted.outputs,
        imputed_inputs=convert.imputed_inputs(pipeline, prep.numeric, converted.features, tensor_input),
        missing_category=data.MISSING_CATEGORY,
        classes=[c.item() if isinstance(c, np.generic) else c for c in prep.classes] if prep.classes else None,
        metric=str(metric),
        metrics=values,
        cv_score=found.best.score,
        best_estimator=found.best.estimator,
        best_params=found.best.params,
        leaderboard=leaderboard,
        gates=[g.wire() for g in results],
        gates_passed=passed,
        champion_score=champion_score,
        fairness=fair_report.wire() if fair_report else None,
        feature_importance=importances,
        onnx_max_delta=parity.max_delta,
        onnx_label_agreement=parity.label_agreement if classification else None,
        dataset_uri=loaded.uri or ds.uri,
        dataset_sha256=loaded.sha256,
        dataset_rows=loaded.rows,
        spec_hash=spec_hash(spec),
        model_sha256=digest,
        versions=_versions(),
        created=_now(),
        reference=ref,
        calibration=groundtruth_hooks.calibration(task, y_hold, hold_pred, prep.classes),
    )
    try:
        store.write_artifact(uri, model_bytes, meta)
    except store.ArtifactError as exc:
        raise StoreError(f"cannot write the artifact: {exc}") from exc
    log(f"Wrote artifact {uri} (model sha256 {digest[:12]})")
    summary: dict[str, Any] = {
        "artifact": {"uri": uri, "sha256": digest},
        "dataset": {"uri": loaded.uri or ds.uri, "sha256": loaded.sha256, "rows": loaded.rows},
        "task": str(task),
        "bestEstimator": found.best.estimator,
        "bestParams": found.best.params,
        "metric": str(metric),
        "score": score,
        "metrics": values,
        "onnxMaxDelta": parity.max_delta,
        "gates": [g.wire() for g in results],
        "passed": passed,
        "leaderboard": leaderboard[:3],
        "startTime": start_time or p.start_time,
        "completionTime": _now(),
        "durationSeconds": round(time.monotonic() - started + extra_wall_seconds, 3),
        "cpuSeconds": round(time.process_time() - cpu0 + extra_cpu_seconds, 3),
    }
    return Result(summary=summary, passed=passed, metadata=meta, model_bytes=model_bytes)
