"""Fuzzing: schemathesis against /openapi.json and hypothesis-made payloads.

Whatever arrives: never a 5xx, the process stays up, memory stays flat.
Bounded (a fixed number of examples, a seed) so the run takes well under a
minute on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=40,
)
datatypes = st.sampled_from(["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES", "FP16", "UINT8", "nope"])
shapes = st.lists(st.integers(min_value=-2, max_value=40), max_size=3)
numbers = st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-10, 10), max_size=90)
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "age", "city", "visits", "X", "zz"]), "shape": shapes,
     "datatype": datatypes, "data": numbers | json_values},
    optional={"parameters": st.dictionaries(st.text(max_size=5), json_scalars, max_size=2)},
)
v2_bodies = st.one_of(
    st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)},
                          optional={"id": json_scalars, "outputs": json_values}),
    json_values,
)
v1_bodies = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(numbers | st.dictionaries(
        st.sampled_from(["age", "city", "visits", "f0", "zz"]), json_scalars, max_size=4), max_size=4)},
        optional={"parameters": json_values}),
    json_values,
)
raw_bodies = st.binary(max_size=200)


def _hammer(server: Any) -> None:
    import numpy as np

    x = np.random.default_rng(0).normal(size=(8, 30)).astype(np.float32)
    for _ in range(100):
        server.post("/v2/models/logistic/infer", json={"inputs": [
            {"name": "input", "shape": [8, 30], "datatype": "FP32", "data": x.ravel().tolist()}]})
        server.post("/v2/models/logistic/infer", json={"inputs": [{"name": "input", "shape": [1], "data": []}]})
        server.post("/v1/models/logistic:predict", data=b"{broken")


@pytest.mark.slow
def test_hypothesis_payloads_never_5xx_and_memory_stays_flat(logistic: Any, mixed: Any) -> None:
    _hammer(logistic)
    rss_before = logistic.rss_kib()

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(v2=v2_bodies, v1=v1_bodies, raw=raw_bodies)
    def check(v2: Any, v1: Any, raw: bytes) -> None:
        for server, model in ((logistic, "logistic"), (mixed, "mixed")):
            for path, kw in ((f"/v2/models/{model}/infer", {"json": v2}),
                             (f"/v1/models/{model}:predict", {"json": v1}),
                             (f"/v2/models/{model}/infer", {"data": raw})):
                r = server.post(path, **kw)
                assert r.status_code < 500, (path, kw, r.status_code, r.text)
                assert "error" in r.json() or r.status_code == 200

    check()
    _hammer(logistic)
    assert logistic.proc.poll() is None and mixed.proc.poll() is None
    grown = logistic.rss_kib() - rss_before
    assert grown < 20 * 1024, f"RSS grew by {grown} KiB"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logistic", "mixed"])
def test_schemathesis_finds_no_server_error(request: pytest.FixtureRequest, tmp_path: Path, model: str) -> None:
    server = request.getfixturevalue(model)
    rss_before = server.rss_kib()
    result = subprocess.run(
        [SCHEMATHESIS, "run", server.url + "/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "20", "--seed", "7", "--phases", "examples,coverage,fuzzing", "--mode", "all",
         "--generation-database", "none", "--request-timeout", "10", "--no-color", "--suppress-health-check", "all"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert server.proc.poll() is None
    assert server.get("/v2/health/ready").status_code == 200
    assert server.rss_kib() - rss_before < 40 * 1024
