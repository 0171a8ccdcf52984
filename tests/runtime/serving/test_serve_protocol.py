"""Both protocols against real artifacts and a bare ONNX file: every endpoint, every datatype."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import serve_models


def v2_body(x: np.ndarray, name: str = "input", datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype,
                        "data": x.ravel().tolist()}], **extra}


def direct(path: Path, feed: dict[str, np.ndarray]) -> list[Any]:
    model = path / "model.onnx" if path.is_dir() else path
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feed)  # type: ignore[no-any-return]


def rows(n: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, serve_models.N_FEATURES)).astype(np.float32)


# -- server-level endpoints -------------------------------------------------------------


def test_server_metadata_live_ready(logistic: Any) -> None:
    meta = logistic.get("/v2").json()
    assert meta["name"] == "modelship-serve" and "version" in meta and isinstance(meta["extensions"], list)
    assert logistic.get("/v2/health/live").json() == {"live": True}
    ready = logistic.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_model_metadata_from_graph_and_metadata_json(logistic: Any) -> None:
    for path in ("/v2/models/logistic", "/v2/models/logistic/versions/3"):
        meta = logistic.get(path).json()
        assert meta["name"] == "logistic" and meta["versions"] == ["3"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
        assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"label": "INT64", "probabilities": "FP32"}
        assert meta["parameters"]["task"] == "binary"
        assert [f["name"] for f in meta["parameters"]["features"]] == [f"f{i}" for i in range(30)]
    for path in ("/v2/models/logistic/ready", "/v2/models/logistic/versions/3/ready"):
        assert logistic.get(path).json() == {"name": "logistic", "ready": True}


def test_artifact_metadata_is_what_the_server_loaded(logistic: Any) -> None:
    from modelship_runtime.artifacts.metadata import Metadata

    r = logistic.get("/v2/models/logistic/artifact")
    assert r.status_code == 200
    md = Metadata.model_validate(r.json())
    assert md.model_sha256 == logistic.get("/v2/models/logistic").json()["parameters"]["sha256"]
    assert [f.name for f in md.features] == [f"f{i}" for i in range(30)]
    assert logistic.post("/v2/models/logistic/artifact", json={}).status_code == 405
    assert logistic.get("/v2/models/nope/artifact").status_code == 404


@pytest.mark.parametrize("path", [
    "/v2/models/nope", "/v2/models/nope/ready", "/v2/models/logistic/versions/9",
    "/v2/models/logistic/versions/9/ready", "/v1/models/nope", "/nothing", "/v2/models/logistic/explain",
])
def test_unknown_model_version_or_path_is_404(logistic: Any, path: str) -> None:
    r = logistic.get(path)
    assert r.status_code == 404 and r.json()["error"]


def test_unknown_model_on_infer_is_404(logistic: Any) -> None:
    r = logistic.post("/v2/models/nope/infer", json=v2_body(rows(1)))
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = logistic.post("/v1/models/nope:predict", json={"instances": rows(1).tolist()})
    assert r.status_code == 404


def test_wrong_method_is_405(logistic: Any) -> None:
    assert logistic.get("/v2/models/logistic/infer").status_code == 405
    assert logistic.post("/v2/health/ready").status_code == 405


def test_openapi_document_lists_every_endpoint(logistic: Any) -> None:
    doc = logistic.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}",
                 "/v2/models/{model_name}/ready", "/v2/models/{model_name}/infer",
                 "/v2/models/{model_name}/versions/{model_version}/infer",
                 "/v1/models/{model_name}", "/v1/models/{model_name}:predict", "/metrics"):
        assert path in doc["paths"], path


# -- v2 inference -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 300])
def test_v2_predictions_equal_onnxruntime(logistic: Any, artifacts: dict[str, Path], n: int) -> None:
    x = rows(n)
    r = logistic.post("/v2/models/logistic/infer", json=v2_body(x, id="req-1"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_name"] == "logistic" and doc["model_version"] == "3" and doc["id"] == "req-1"
    out = {o["name"]: o for o in doc["outputs"]}
    label, proba = direct(artifacts["logistic"], {"input": x})
    assert out["label"]["datatype"] == "INT64" and out["label"]["shape"] == [n]
    assert out["label"]["data"] == label.tolist()
    assert out["probabilities"]["shape"] == [n, 2]
    np.testing.assert_allclose(np.array(out["probabilities"]["data"]).reshape(n, 2), proba, rtol=1e-6)


def test_v2_versioned_infer_nested_data_and_output_selection(logistic: Any, artifacts: dict[str, Path]) -> None:
    x = rows(3)
    body = {"inputs": [{"name": "input", "shape": [3, 30], "datatype": "FP32", "data": x.tolist()}],
            "outputs": [{"name": "probabilities"}]}
    r = logistic.post("/v2/models/logistic/versions/3/infer", json=body)
    assert r.status_code == 200, r.text
    outs = r.json()["outputs"]
    assert [o["name"] for o in outs] == ["probabilities"]
    np.testing.assert_allclose(np.array(outs[0]["data"]).reshape(3, 2), direct(artifacts["logistic"], {"input": x})[1],
                               rtol=1e-6)


def test_v2_forest_and_concurrent_requests_are_batched_correctly(forest: Any, artifacts: dict[str, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    xs = [rows(k % 5 + 1, seed=k) for k in range(40)]

    def call(x: np.ndarray) -> list[int]:
        import requests

        r = requests.post(forest.url + "/v2/models/forest/infer", json=v2_body(x), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["outputs"][0]["data"]  # type: ignore[no-any-return]

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(call, xs))
    for x, labels in zip(xs, got, strict=True):
        assert labels == direct(artifacts["forest"], {"input": x})[0].tolist()


def test_v2_fp64_regression(regression: Any, artifacts: dict[str, Path]) -> None:
    x = np.random.default_rng(3).normal(size=(4, 5))
    r = regression.post("/v2/models/regression/infer", json=v2_body(x, datatype="FP64"))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "value" and out["datatype"] == "FP64" and out["shape"] == [4, 1]
    np.testing.assert_allclose(out["data"], direct(artifacts["regression"], {"input": x})[0].ravel())


def test_v2_columns_model_with_bytes_and_int64(mixed: Any, artifacts: dict[str, Path]) -> None:
    age = np.array([[20.0], [70.0], [45.5]], dtype=np.float32)
    city = np.array([["lyon"], ["paris"], ["atlantis"]], dtype=object)
    visits = np.array([[1], [5], [19]], dtype=np.int64)
    body = {"inputs": [
        {"name": "age", "shape": [3, 1], "datatype": "FP32", "data": age.ravel().tolist()},
        {"name": "city", "shape": [3, 1], "datatype": "BYTES", "data": city.ravel().tolist()},
        {"name": "visits", "shape": [3, 1], "datatype": "INT64", "data": visits.ravel().tolist()},
    ]}
    r = mixed.post("/v2/models/mixed/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    label, proba = direct(artifacts["mixed"], {"age": age, "city": city, "visits": visits})
    assert out["label"] == label.tolist()
    np.testing.assert_allclose(np.array(out["probabilities"]).reshape(3, 2), proba, rtol=1e-6)


def test_v2_every_datatype_round_trips(types_server: Any) -> None:
    values = {
        "b": ("BOOL", [True, False, False, True]),
        "i32": ("INT32", [1, -2, 2**31 - 1, 0]),
        "i64": ("INT64", [2**40, -1, 0, 7]),
        "f32": ("FP32", [0.5, -1.25, 3.0, 1e-3]),
        "f64": ("FP64", [0.1, 1e300, -2.5, 0.0]),
        "s": ("BYTES", ["a", "b", "ç", ""]),
    }
    body = {"inputs": [{"name": n, "shape": [2, 2], "datatype": d, "data": v} for n, (d, v) in values.items()]}
    r = types_server.post("/v2/models/types/infer", json=body)
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    for n, (datatype, data) in values.items():
        out = outs[f"{n}_out"]
        assert out["datatype"] == datatype and out["shape"] == [2, 2]
        if datatype == "FP32":
            np.testing.assert_allclose(out["data"], data, rtol=1e-6)
        else:
            assert out["data"] == data


def test_bare_onnx_serves_from_the_graph(bare: Any, artifacts: dict[str, Path]) -> None:
    meta = bare.get("/v2/models/churn").json()
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 30]}]
    assert meta["parameters"].get("drift_histograms") is None
    x = rows(4)
    r = bare.post("/v2/models/churn/infer", json=v2_body(x, name="X"))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    label, proba = direct(artifacts["bare"], {"X": x})
    assert out["output_label"]["data"] == label.tolist()
    # ZipMap's list of {class: probability} is served as an [N, classes] matrix.
    want = np.array([[p[k] for k in sorted(p)] for p in proba])
    np.testing.assert_allclose(np.array(out["output_probability"]["data"]).reshape(4, 2), want, rtol=1e-6)
    v1 = bare.post("/v1/models/churn:predict", json={"instances": x.tolist(), "parameters": {"probabilities": True}})
    assert v1.status_code == 200 and v1.json()["predictions"] == label.tolist()
    assert "modelship_feature_value_bucket" not in bare.get("/metrics").text  # no metadata, no drift histograms


# -- v1 inference and agreement --------------------------------------------------------------


def test_v1_lists_objects_and_v2_agree(logistic: Any) -> None:
    x = rows(6)
    v2 = logistic.post("/v2/models/logistic/infer", json=v2_body(x)).json()
    v2_out = {o["name"]: o["data"] for o in v2["outputs"]}
    as_lists = logistic.post("/v1/models/logistic:predict",
                             json={"instances": x.tolist(), "parameters": {"probabilities": True}}).json()
    objects = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in x]
    as_objects = logistic.post("/v1/models/logistic:predict", json={"instances": objects}).json()
    assert as_lists["predictions"] == v2_out["label"] == as_objects["predictions"]
    np.testing.assert_allclose(np.array(as_lists["probabilities"]).ravel(), v2_out["probabilities"], rtol=1e-6)
    assert "probabilities" not in as_objects
    assert logistic.get("/v1/models/logistic").json() == {"name": "logistic", "ready": True}
    assert logistic.get("/v1/models").json() == {"models": ["logistic"]}


def test_v1_columns_model_objects_and_lists_agree_with_v2(mixed: Any) -> None:
    objects = [{"age": 33.0, "city": "nice", "visits": 3}, {"age": 81.0, "city": "lyon", "visits": 0}]
    lists = [[33.0, "nice", 3], [81.0, "lyon", 0]]
    a = mixed.post("/v1/models/mixed:predict", json={"instances": objects, "parameters": {"probabilities": True}})
    b = mixed.post("/v1/models/mixed:predict", json={"instances": lists, "parameters": {"probabilities": True}})
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    assert a.json().pop("id") != b.json().pop("id")  # each request gets its own id
    assert {k: v for k, v in a.json().items() if k != "id"} == {k: v for k, v in b.json().items() if k != "id"}
    v2 = mixed.post("/v2/models/mixed/infer", json={"inputs": [
        {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [33.0, 81.0]},
        {"name": "city", "shape": [2, 1], "datatype": "BYTES", "data": ["nice", "lyon"]},
        {"name": "visits", "shape": [2, 1], "datatype": "INT64", "data": [3, 0]},
    ]}).json()
    assert {o["name"]: o["data"] for o in v2["outputs"]}["label"] == a.json()["predictions"]


def test_v1_regression_values(regression: Any, artifacts: dict[str, Path]) -> None:
    x = np.random.default_rng(4).normal(size=(3, 5))
    r = regression.post("/v1/models/regression:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], direct(artifacts["regression"], {"input": x})[0].ravel())


# -- bad input: 4xx naming the problem, never 5xx -------------------------------------------

GOOD_ROW = [0.0] * 30
BAD_V2: list[tuple[str, Any, int, str]] = [
    ("malformed json", b"{not json", 400, "malformed JSON"),
    ("empty body", b"", 400, "no body"),
    ("not an object", [1, 2], 400, "JSON object"),
    ("no inputs", {}, 400, "inputs"),
    ("wrong tensor name", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": GOOD_ROW}]}, 400, "unknown input 'x'"),
    ("wrong datatype", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64", "data": GOOD_ROW}]}, 400, "expects FP32"),
    ("unknown datatype", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP99", "data": GOOD_ROW}]}, 400, "unknown datatype"),
    ("shape mismatch", {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP32", "data": GOOD_ROW}]}, 400, "needs 60 values"),
    ("wrong feature count", {"inputs": [{"name": "input", "shape": [1, 29], "datatype": "FP32", "data": GOOD_ROW[:29]}]}, 400, "expects [-1, 30]"),
    ("wrong rank", {"inputs": [{"name": "input", "shape": [30], "datatype": "FP32", "data": GOOD_ROW}]}, 400, "shape"),
    ("negative shape", {"inputs": [{"name": "input", "shape": [-1, 30], "datatype": "FP32", "data": GOOD_ROW}]}, 400, "non-negative"),
    ("strings for numbers", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": ["a"] * 30}]}, 400, "needs numbers"),
    ("numeric strings", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": ["1.5"] * 30}]}, 400, "needs numbers"),
    ("true among numbers", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [True, *GOOD_ROW[1:]]}]}, 400, "got true/false"),
    ("null", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [None] * 30}]}, 400, "null"),
    ("infinity", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [1e39] * 30}]}, 400, "NaN, infinity"),
    ("ragged", {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP32", "data": [GOOD_ROW, GOOD_ROW[:3]]}]}, 400, "ragged"),
    ("no rows", {"inputs": [{"name": "input", "shape": [0, 30], "datatype": "FP32", "data": []}]}, 400, "no rows"),
    ("unknown output", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": GOOD_ROW}], "outputs": [{"name": "zz"}]}, 400, "unknown output"),
    ("id not a string", {"id": 5, "inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": GOOD_ROW}]}, 400, "'id'"),
    ("duplicate input", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": GOOD_ROW}] * 2}, 400, "twice"),
    ("no data", {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32"}]}, 400, "no data"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_V2, ids=[c[0] for c in BAD_V2])
def test_v2_bad_input_is_4xx_naming_the_problem(logistic: Any, case: str, body: Any, status: int, message: str) -> None:
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    r = logistic.post("/v2/models/logistic/infer", **kw)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


BAD_V1: list[tuple[str, Any, str]] = [
    ("no instances", {}, "instances"),
    ("wrong feature count", {"instances": [[1.0] * 29]}, "takes 30 features"),
    ("unknown feature keys", {"instances": [{**{f"f{i}": 0.0 for i in range(30)}, "zz": 1.0}]}, "unknown feature(s) ['zz']"),
    ("missing feature keys", {"instances": [{f"f{i}": 0.0 for i in range(29)}]}, "missing feature(s) ['f29']"),
    ("strings for numbers", {"instances": [["x"] * 30]}, "needs numbers"),
    ("false among numbers", {"instances": [[False, *[0.0] * 29]]}, "feature 'f0'"),
    ("mixed instance kinds", {"instances": [[0.0] * 30, {"f0": 1}]}, "each instance"),
    ("parameters not an object", {"instances": [[0.0] * 30], "parameters": 3}, "parameters"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD_V1, ids=[c[0] for c in BAD_V1])
def test_v1_bad_input_is_400_naming_the_problem(logistic: Any, case: str, body: Any, message: str) -> None:
    r = logistic.post("/v1/models/logistic:predict", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_columns_model_rejects_bad_categorical_and_int(mixed: Any) -> None:
    r = mixed.post("/v1/models/mixed:predict", json={"instances": [{"age": 3.0, "city": None, "visits": 1}]})
    assert r.status_code == 400 and "city" in r.json()["error"]
    r = mixed.post("/v1/models/mixed:predict", json={"instances": [{"age": 3.0, "city": "nice", "visits": 1.5}]})
    assert r.status_code == 400 and "visits" in r.json()["error"] and "integers" in r.json()["error"]


def test_oversized_body_is_413_and_the_server_lives(logistic: Any) -> None:
    big = b'{"inputs": [' + b" " * (17 * 1024 * 1024) + b"]}"
    r = logistic.post("/v2/models/logistic/infer", data=big)
    assert r.status_code == 413 and "MODELSHIP_MAX_BODY_BYTES" in r.json()["error"]
    assert logistic.get("/v2/health/live").status_code == 200


def test_malformed_http_gets_400_and_the_server_lives(logistic: Any) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", logistic.port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
    assert logistic.get("/v2/health/live").status_code == 200


def test_pipelined_requests_are_answered_in_order(logistic: Any) -> None:
    import socket

    body = b'{"inputs":[{"name":"input","shape":[1,30],"datatype":"FP32","data":[' + b",".join([b"0.5"] * 30) + b"]}]}"
    req = (b"POST /v2/models/logistic/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", logistic.port), timeout=5) as s:
        s.sendall(req + live + req + live)
        data = b""
        while data.count(b"HTTP/1.1 200") < 4:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
    parts = data.split(b"HTTP/1.1 200")[1:]
    assert [b"outputs" in p for p in parts] == [True, False, True, False]
