"""Pure parts of the server: drift counters, codec, batcher, settings, CPU limit."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import pytest

from modelship_runtime.artifacts.metadata import (
    CategoricalReference,
    DriftReference,
    Feature,
    InputMode,
    Metadata,
    NumericReference,
    Output,
)
from modelship_runtime.drift.bins import categorical_bin_counts, numeric_bin_counts
from modelship_runtime.serving import drift as drift_module
from modelship_runtime.serving.batcher import Batcher
from modelship_runtime.serving.codec import coerce
from modelship_runtime.serving.drift import DriftCounters
from modelship_runtime.serving.errors import BadRequest
from modelship_runtime.serving.model import TensorSpec, cpu_limit
from modelship_runtime.serving.settings import ServeSettings


def _metadata(edges: list[list[float]]) -> Metadata:
    feats = [Feature(name=f"f{i}", type="numeric") for i in range(len(edges))]
    return Metadata(
        task="binary", features=feats, input_mode=InputMode.TENSOR, tensor_input="input",
        outputs=[Output(name="label", role="label")], model_sha256="x",
        reference=DriftReference(
            features={f"f{i}": NumericReference(edges=e, proportions=[1 / (len(e) + 1)] * (len(e) + 1))
                      for i, e in enumerate(edges)},
            prediction=CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.5, 0.0]),
        ),
    )


def _counts(counters: DriftCounters) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for family in counters.collect():
        if family.name != "modelship_feature_value":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                out.setdefault(s.labels["feature"], []).append(int(s.value))
    return {k: [v[0]] + [b - a for a, b in itertools.pairwise(v)] for k, v in out.items()}


@pytest.mark.parametrize("rows", [1, 3, 50, 2000])  # both the broadcast and the per-column path
def test_numeric_counts_equal_the_binning_function(rows: int) -> None:
    edges = [[-1.0, 0.0, 1.0], [0.5], [-3.0, -2.0, 2.0, 3.0, 10.0]]
    counters = DriftCounters("m", _metadata(edges))
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 3)) * 3
    x[0, 0] = 0.0  # exactly on an edge: the le convention puts it in the lower bin
    if rows > 2:
        x[1, 1] = np.nan
        x[2, 2] = np.inf
    counters.count({"input": x.astype(np.float32)}, {"label": np.zeros(rows, dtype=np.int64)})
    got = _counts(counters)
    for j, e in enumerate(edges):
        assert got[f"f{j}"] == numeric_bin_counts(x[:, j].astype(np.float32), e).tolist()


def test_prediction_and_categorical_counts() -> None:
    md = _metadata([[0.0]])
    counters = DriftCounters("m", md)
    counters.count({"input": np.zeros((4, 1), np.float32)}, {"label": np.array([0, 1, 1, 7])})
    cats = {s.labels["category"]: s.value for f in counters.collect() if f.name == "modelship_feature_category"
            for s in f.samples}
    assert cats == dict(zip(["0", "1", "__other__"], categorical_bin_counts(["0", "1", "1", "7"], ["0", "1"]).tolist(),
                            strict=True))


def test_counting_is_deferred_until_enough_rows_or_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = DriftCounters("m", _metadata([[0.0]]))
    counters.count({"input": np.ones((3, 1), np.float32)}, {"label": np.zeros(3, np.int64)})
    assert counters.rows == 0
    list(counters.collect())
    assert counters.rows == 3
    monkeypatch.setattr(drift_module, "PENDING_ROWS", 4)
    counters.count({"input": np.ones((5, 1), np.float32)}, {"label": np.zeros(5, np.int64)})
    assert counters.rows == 8


F32 = TensorSpec("x", "FP32", np.float32, (-1, 2))
I64 = TensorSpec("x", "INT64", np.int64, (-1, 2))
BOOL = TensorSpec("x", "BOOL", np.bool_, (-1, 2))
STR = TensorSpec("x", "BYTES", np.object_, (-1, 1))


@pytest.mark.parametrize(("spec", "data", "message"), [
    (F32, ["1", "2"], "needs numbers"),
    (F32, [True, False], "needs numbers"),
    (F32, [1.5, True], "FP32 needs numbers, got true/false"),  # numpy alone reads these as 1.0
    (F32, [[0.5, 2.0], [3.0, False]], "FP32 needs numbers, got true/false"),
    (I64, [1, True], "INT64 needs numbers, got true/false"),
    (I64, [[1, 2], [True, 3]], "INT64 needs numbers, got true/false"),
    (F32, [1.0, None], "null"),
    (F32, [1e39, 0.0], "NaN, infinity"),
    (F32, [[1.0], [1.0, 2.0]], "ragged"),
    (I64, [1.5, 2.0], "needs integers"),
    (I64, [2**64, 1], "outside the INT64 range"),
    (I64, [2**63, 1], "outside the INT64 range"),  # numpy makes these float64
    (I64, [[2**70, 1]], "outside the INT64 range"),  # and these objects
    (I64, [1, 2.5], "needs integers, got fractional numbers"),
    (BOOL, [1, 0], "true/false"),
    (STR, [1.5], "BYTES needs strings"),
    (STR, [None], "contains null; the model does not impute this input"),
])
def test_codec_refuses_what_does_not_fit(spec: TensorSpec, data: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        coerce(data, spec, "x")


def test_codec_converts_what_fits() -> None:
    assert coerce([1, 2.5], F32, "x").dtype == np.float32
    assert coerce([1, 2], I64, "x").tolist() == [1, 2]
    assert coerce([[0, 1], [1.0, 0.0]], F32, "x").tolist() == [[0, 1], [1, 0]]  # zeros and ones that are numbers
    assert coerce([True], BOOL, "x").tolist() == [True]
    assert coerce(["a", 3], STR, "x").tolist() == ["a", "3"]
    assert np.isnan(coerce([None, 1.0], F32, "x", allow_missing=True)[0])


def test_batcher_joins_concurrent_requests_and_keeps_a_bad_one_apart() -> None:
    calls: list[int] = []

    def run(feed: dict[str, np.ndarray], small: bool) -> dict[str, np.ndarray]:
        x = feed["x"]
        calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative")
        return {"y": x * 2}

    async def main() -> list[Any]:
        batcher = Batcher(run, max_batch_size=8, max_delay_seconds=0.0, batchable=True,
                          on_batch=lambda *a: None)
        loop = asyncio.get_running_loop()
        futures = []
        for i, n in enumerate([1, 2, 3, 4, 1]):
            fut: asyncio.Future[Any] = loop.create_future()
            x = np.full((n, 1), -1.0 if i == 1 else float(i))
            batcher.submit({"x": x}, n, fut.set_result)
            futures.append(fut)
        results = await asyncio.gather(*futures)
        batcher.close()
        return results

    results = asyncio.run(main())
    assert isinstance(results[1], ValueError)
    assert [r["y"].ravel().tolist() for i, r in enumerate(results) if i != 1] == [[0.0], [4.0] * 3, [6.0] * 4, [8.0]]
    # 1+2+3 rows shared a call (which failed, so each ran alone), then 4+1 shared one.
    assert calls[0] == 6 and calls[-1] == 5


def test_every_flag_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelship_runtime.serving.cli import FLAGS, parse

    monkeypatch.setenv("MODELSHIP_MODEL_URI", "file:///m")
    monkeypatch.setenv("MODELSHIP_WORKERS", "3")
    monkeypatch.setenv("MODELSHIP_MAX_BATCH_DELAY_MS", "2.5")
    monkeypatch.setenv("MODELSHIP_FAULT_ERROR_RATIO", "0.25")
    s = parse([])
    assert (s.model_uri, s.workers, s.max_batch_delay_ms, s.fault_error_ratio) == ("file:///m", 3, 2.5, 0.25)
    assert parse(["--workers", "2"]).workers == 2  # a flag beats the environment
    assert all(field in ServeSettings.model_fields for _, field, _ in FLAGS)


def test_cpu_limit_is_positive() -> None:
    assert cpu_limit() >= 1


def test_an_empty_category_is_missing_as_in_the_trainers_reference() -> None:
    counter = drift_module._Categorical("region", ["north", "south"], {"north": 0, "south": 1},
                                        np.zeros(3, dtype=np.int64))
    counter.add(np.array(["north", "", None, "east", "south", ""], dtype=object))
    assert counter.counts.tolist() == [1, 1, 1] and counter.missing == 3
    assert categorical_bin_counts(["north", "", None, "east"], ["north", "south"]).tolist() == [1, 0, 1]


def test_batcher_runs_short_calls_inline_by_the_median_not_the_mean() -> None:
    """One call the kernel preempted must not send every later call through the thread."""
    seen: list[bool] = []
    b = Batcher(lambda feed, small: seen.append(small) or feed, max_batch_size=64, max_delay_seconds=0.0,
                batchable=True, on_batch=lambda *a: None)
    b.prime(20e-6)
    assert b.expected_seconds(1) == 20e-6
    assert b.expected_seconds(64) == 20e-6 * 64  # nothing measured at 64 rows yet: scaled up
    for seconds in (30e-6, 0.05, 25e-6, 22e-6):
        b._times[1].append(seconds)
    assert b.expected_seconds(1) < 1e-4
    b._times[7] = b._times[1].__class__([2e-3, 3e-3, 2.5e-3], maxlen=7)
    assert b.expected_seconds(100) == 2.5e-3 and b.expected_seconds(127) == 2.5e-3
    b.close()


def test_input_onnxruntime_refuses_is_the_clients_422_not_a_500() -> None:
    """What our checks let by but onnxruntime refuses (its InvalidArgument) is the client's input."""
    from modelship_runtime.serving.batcher import Batcher
    from modelship_runtime.serving.errors import InferenceFailed

    class InvalidArgument(Exception):  # onnxruntime's exception class of that name
        pass

    def run(feed: dict[str, Any], small: bool) -> dict[str, Any]:
        raise InvalidArgument("Unexpected input data type")

    b = Batcher(run, max_batch_size=8, max_delay_seconds=0.0, batchable=True, on_batch=lambda *a: None)
    got = b._call({"x": np.zeros((1, 2))}, 1, 1, True, [])
    assert isinstance(got, InferenceFailed) and got.status == 422 and "Unexpected input" in got.message
    other = Batcher(lambda f, s: 1 / 0, max_batch_size=8, max_delay_seconds=0.0, batchable=True,  # type: ignore[arg-type,return-value]
                    on_batch=lambda *a: None)._call({"x": np.zeros((1, 2))}, 1, 1, True, [])
    assert isinstance(other, ZeroDivisionError)  # a server fault stays a 500
