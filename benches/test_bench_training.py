"""Training benchmark: trainer wall time, and ONNX vs scikit-learn prediction speed.

Run with ``make bench`` (``pytest benches -s``). Data: 100k rows x 30 numeric
features (``make_classification``); the end-to-end trainer run uses the first
20k. Prints two tables and asserts the bounds README states: ONNX answers
match scikit-learn's; one row through ONNX is at least ONE_ROW_MIN_SPEEDUP
times faster than scikit-learn (its per-call validation dominates), a 100k
batch at least BATCH_MIN_RATIO as fast (the same arithmetic on both sides);
the whole trainer finishes each model within TRAINER_MAX_S with an ONNX delta
under the parity gate.
"""

from __future__ import annotations

import os

# As modelship-train does (before scikit-learn loads OpenMP, if it has not yet).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from modelship.api.trainingjob import Pipeline as PipelineSpec
from modelship_runtime.training import convert, registry
from modelship_runtime.training.pipeline import build_pipeline

ROWS, FEATURES = 100_000, 30
# The whole trainer (3-fold CV, refit, importance) runs on fewer rows to keep
# the bench in minutes on 2 cores.
TRAINER_ROWS = 20_000
SINGLE_ROW_CALLS = 300
ONE_ROW_MIN_SPEEDUP = 10
BATCH_MIN_RATIO = 0.5
TRAINER_MAX_S = 120
MAX_ONNX_DELTA = 1e-4  # the parity gate's default
MODELS: dict[str, dict[str, Any]] = {
    "LogisticRegression": {},
    "RandomForest": {"n_estimators": 50, "max_depth": 10},
    "HistGradientBoosting": {"max_iter": 100},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = make_classification(n_samples=ROWS, n_features=FEATURES, n_informative=12, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(FEATURES)])
    return frame, pd.Series(y, name="label")


def _best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def _measure(name: str, params: dict[str, Any], matrix: np.ndarray[Any, Any], y: pd.Series,
             columns: list[str]) -> tuple[Any, ...]:
    est, prefix = registry.build(name, True, seed=0)
    est.set_params(**{prefix + k: v for k, v in params.items()})
    pipeline = build_pipeline(PipelineSpec(), columns, [], est, 0, registry.lookup(name).onnx_float32(True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        pipeline.fit(matrix, y)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        converted = convert.to_onnx(pipeline, columns, [], classification=True)
        convert_s = time.perf_counter() - start
    sess = convert.session(converted.bytes())
    names = [o.name for o in converted.outputs]
    one = matrix[:1]
    proba_onnx = sess.run(names, {convert.TENSOR_INPUT: matrix})[1]
    assert np.max(np.abs(proba_onnx - pipeline.predict_proba(matrix))) <= MAX_ONNX_DELTA
    sk_single = _per_call_us(lambda: pipeline.predict_proba(one), SINGLE_ROW_CALLS)
    ox_single = _per_call_us(lambda: sess.run(names, {convert.TENSOR_INPUT: one}), SINGLE_ROW_CALLS)
    sk_batch = _best_of(lambda: pipeline.predict_proba(matrix))
    ox_batch = _best_of(lambda: sess.run(names, {convert.TENSOR_INPUT: matrix}))
    return name, fit_s, convert_s, len(converted.bytes()), sk_single, ox_single, sk_batch, ox_batch


def test_bench_prediction_speed(data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    matrix = X.to_numpy(dtype=np.float64)
    rows = [_measure(name, params, matrix, y, list(X.columns)) for name, params in MODELS.items()]
    print(f"\nTraining + conversion, and prediction, {ROWS:,} rows x {FEATURES} features, 1 thread "
          "(onnxruntime intra-op 1; RandomForest n_jobs 1)")
    head = (f"{'model':22} {'fit s':>7} {'to onnx s':>9} {'onnx KiB':>9} | {'1 row sk us':>11} "
            f"{'1 row onnx us':>13} {'ratio':>6} | {'100k sk s':>9} {'100k onnx s':>11} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    for name, fit_s, conv_s, size, sks, oxs, skb, oxb in rows:
        print(f"{name:22} {fit_s:7.2f} {conv_s:9.2f} {size / 1024:9.0f} | {sks:11.1f} {oxs:13.1f} {sks / oxs:5.1f}x | "
              f"{skb:9.3f} {oxb:11.3f} {skb / oxb:5.1f}x")
    print(f"bounds: 1 row ONNX >= {ONE_ROW_MIN_SPEEDUP}x scikit-learn, 100k rows >= {BATCH_MIN_RATIO}x; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for name, _fit, _conv, _size, sks, oxs, skb, oxb in rows:
        assert sks / oxs >= ONE_ROW_MIN_SPEEDUP, f"{name}: one row through ONNX only {sks / oxs:.1f}x faster"
        assert skb / oxb >= BATCH_MIN_RATIO, f"{name}: a 100k batch through ONNX at {skb / oxb:.2f}x scikit-learn"


def test_bench_trainer_end_to_end(data: tuple[pd.DataFrame, pd.Series], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    X, y = data
    csv = tmp_path / "data.csv"
    X.assign(label=y).head(TRAINER_ROWS).to_csv(csv, index=False)
    trainer = Path(sys.executable).parent / "modelship-train"
    rows = []
    for name, params in MODELS.items():
        spec = {
            "dataset": {"uri": f"file://{csv}", "target": "label"},
            "candidates": [{"estimator": name, "params": {k: [v] for k, v in params.items()}}],
            "search": {"cvFolds": 3},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        start = time.perf_counter()
        # A process of its own, as in the pod: imports and OpenMP start-up count.
        done = subprocess.run(
            [str(trainer), "--spec", str(path), "--output", f"file://{tmp_path / name}",
             "--termination-log", str(tmp_path / "log")],
            capture_output=True, text=True, timeout=1800, check=False,
        )
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        rows.append((name, wall, summary["cpuSeconds"], summary["score"], summary["onnxMaxDelta"]))
    with capsys.disabled():
        print(f"\nmodelship-train as a process (load CSV, 3-fold CV, refit, ONNX, gates, importance, "
              f"reference), {TRAINER_ROWS:,} x {FEATURES}")
        head = f"{'model':22} {'wall s':>7} {'cpu s':>7} {'accuracy':>9} {'onnx delta':>11}"
        print(head)
        print("-" * len(head))
        for name, wall, cpu, score, delta in rows:
            print(f"{name:22} {wall:7.1f} {cpu:7.1f} {score:9.4f} {delta:11.2e}")
        print(f"bounds: wall <= {TRAINER_MAX_S} s, ONNX delta <= {MAX_ONNX_DELTA}")
    for name, wall, _cpu, _score, delta in rows:
        assert wall <= TRAINER_MAX_S, f"{name}: the trainer took {wall:.0f} s"
        assert delta <= MAX_ONNX_DELTA, f"{name}: ONNX delta {delta:.2e}"
