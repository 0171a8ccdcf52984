"""Triton's own clients against modelship-serve: tritonclient.http with binary tensors, tritonclient.grpc.

Nothing here is modelship code on the client side: if these pass, a user's
Triton or KServe client works unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

X = np.random.default_rng(0).normal(size=(5, 30)).astype(np.float32)


def _json_answer(server: Any, x: np.ndarray) -> dict[str, Any]:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = server.post("/v2/models/logistic/infer", json=body)
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


@pytest.fixture(scope="module")
def http_client(logistic: Any) -> Any:
    client = thttp.InferenceServerClient(f"127.0.0.1:{logistic.port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(logistic: Any) -> Any:
    client = tgrpc.InferenceServerClient(logistic.grpc_target)
    yield client
    client.close()


def test_http_binary_inputs_and_outputs_match_json(logistic: Any, http_client: Any) -> None:
    expected = _json_answer(logistic, X)
    tensor = thttp.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=True)
    result = http_client.infer("logistic", [tensor], request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in result.get_response()["outputs"])
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-6)
    assert result.as_numpy("probabilities").dtype == np.float32


def test_http_binary_mixed_outputs_and_json_inputs(logistic: Any, http_client: Any) -> None:
    expected = _json_answer(logistic, X)
    tensor = thttp.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=False)  # JSON in, one output binary, one JSON
    outputs = [thttp.InferRequestedOutput("label", binary_data=False),
               thttp.InferRequestedOutput("probabilities", binary_data=True)]
    result = http_client.infer("logistic", [tensor], outputs=outputs)
    label, proba = result.get_response()["outputs"]
    assert label["data"] == expected["label"].tolist() and "parameters" not in label
    assert proba["parameters"] == {"binary_data_size": X.shape[0] * 2 * 4}
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-6)
    only = http_client.infer("logistic", [tensor], outputs=[thttp.InferRequestedOutput("label")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["label"]


def test_http_binary_every_datatype(types_server: Any) -> None:
    """BOOL, INT32, INT64, FP32, FP64 and BYTES through the binary extension, echoed back."""
    values = {
        "b": np.array([[True, False], [False, True]]),
        "i32": np.array([[1, -2], [2**31 - 1, -(2**31)]], dtype=np.int32),
        "i64": np.array([[2**40, -3], [0, 7]], dtype=np.int64),
        "f32": np.array([[1.5, -2.25], [0.0, 3e38]], dtype=np.float32),
        "f64": np.array([[1e-300, 2.5], [-1e300, 0.125]], dtype=np.float64),
        "s": np.array([["héllo", ""], ["a\x00b", "naïve"]], dtype=object),
    }
    datatypes = {"b": "BOOL", "i32": "INT32", "i64": "INT64", "f32": "FP32", "f64": "FP64", "s": "BYTES"}
    client = thttp.InferenceServerClient(f"127.0.0.1:{types_server.port}")
    try:
        inputs = []
        for name, arr in values.items():
            t = thttp.InferInput(name, list(arr.shape), datatypes[name])
            t.set_data_from_numpy(arr, binary_data=True)
            inputs.append(t)
        result = client.infer("types", inputs)
        for name, arr in values.items():
            got = result.as_numpy(f"{name}_out")
            if name == "s":
                assert [v.decode() for v in got.ravel()] == arr.ravel().tolist()
            else:
                np.testing.assert_array_equal(got, arr)
                assert got.dtype == arr.dtype
    finally:
        client.close()


def test_http_binary_errors_are_4xx_with_the_reason(http_client: Any) -> None:
    wrong = thttp.InferInput("input", [2, 29], "FP32")
    wrong.set_data_from_numpy(X[:2, :29].copy(), binary_data=True)
    with pytest.raises(InferenceServerException, match=r"shape \[2, 29\]") as info:
        http_client.infer("logistic", [wrong])
    assert info.value.status() == "400"
    nan = X[:2].copy()
    nan[0, 0] = np.nan
    missing = thttp.InferInput("input", [2, 30], "FP32")
    missing.set_data_from_numpy(nan, binary_data=True)
    with pytest.raises(InferenceServerException, match="NaN"):
        http_client.infer("logistic", [missing])
    typed = thttp.InferInput("input", [2, 30], "FP64")
    typed.set_data_from_numpy(X[:2].astype(np.float64), binary_data=True)
    with pytest.raises(InferenceServerException, match="datatype FP64; the model expects FP32"):
        http_client.infer("logistic", [typed])


def test_http_client_metadata_and_health(http_client: Any) -> None:
    assert http_client.is_server_live() and http_client.is_server_ready()
    assert http_client.is_model_ready("logistic")
    meta = http_client.get_model_metadata("logistic")
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 30]}
    assert "binary_tensor_data" in http_client.get_server_metadata()["extensions"]


def test_grpc_client_health_metadata_and_inference(logistic: Any, grpc_client: Any) -> None:
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("logistic") and grpc_client.is_model_ready("logistic", "3")
    meta = grpc_client.get_model_metadata("logistic", as_json=True)
    assert meta["name"] == "logistic" and meta["versions"] == ["3"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "30"]}]
    server = grpc_client.get_server_metadata(as_json=True)
    assert server["name"] == "modelship-serve" and "binary_tensor_data" in server["extensions"]
    expected = _json_answer(logistic, X)
    tensor = tgrpc.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = grpc_client.infer("logistic", [tensor], request_id="g-1")
    assert result.get_response().id == "g-1" and result.get_response().model_version == "3"
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-6)
    only = grpc_client.infer("logistic", [tensor], outputs=[tgrpc.InferRequestedOutput("probabilities")])
    assert [o.name for o in only.get_response().outputs] == ["probabilities"]


def test_grpc_client_errors_carry_the_status_and_reason(grpc_client: Any) -> None:
    wrong = tgrpc.InferInput("input", [2, 29], "FP32")
    wrong.set_data_from_numpy(X[:2, :29].copy())
    with pytest.raises(InferenceServerException, match=r"shape \[2, 29\]") as info:
        grpc_client.infer("logistic", [wrong])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    ok = tgrpc.InferInput("input", [2, 30], "FP32")
    ok.set_data_from_numpy(X[:2])
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("other", [ok])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("logistic", [ok], model_version="9")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("logistic", [ok], outputs=[tgrpc.InferRequestedOutput("nope")])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "unknown output" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        grpc_client.is_model_ready("other")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_grpc_typed_contents_and_strings(mixed: Any) -> None:
    """The mixed model takes FP32, BYTES and INT64 columns: typed contents, then raw."""
    from tritonclient.grpc import service_pb2

    client = tgrpc.InferenceServerClient(mixed.grpc_target)
    try:
        request = service_pb2.ModelInferRequest(model_name="mixed")
        for name, datatype, field, values in (("age", "FP32", "fp32_contents", [30.0, 70.0]),
                                              ("city", "BYTES", "bytes_contents", [b"lyon", b"paris"]),
                                              ("visits", "INT64", "int64_contents", [3, 12])):
            t = request.inputs.add(name=name, datatype=datatype, shape=[2, 1])
            getattr(t.contents, field).extend(values)
        typed = client._client_stub.ModelInfer(request)
        labels = np.frombuffer(typed.raw_output_contents[0], dtype=np.int64)
        inputs = []
        for name, datatype, arr in (("age", "FP32", np.array([[30.0], [70.0]], dtype=np.float32)),
                                    ("city", "BYTES", np.array([["lyon"], ["paris"]], dtype=object)),
                                    ("visits", "INT64", np.array([[3], [12]], dtype=np.int64))):
            t = tgrpc.InferInput(name, [2, 1], datatype)
            t.set_data_from_numpy(arr)
            inputs.append(t)
        raw = client.infer("mixed", inputs)
        np.testing.assert_array_equal(raw.as_numpy("label"), labels)
        assert raw.as_numpy("probabilities").shape == (2, 2)
        bad = service_pb2.ModelInferRequest(model_name="mixed")
        t = bad.inputs.add(name="age", datatype="FP32", shape=[2, 1])
        t.contents.fp64_contents.extend([1.0, 2.0])  # the wrong field for FP32
        import grpc

        with pytest.raises(grpc.RpcError) as info:
            client._client_stub.ModelInfer(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "contents.fp32_contents has 0" in info.value.details()
    finally:
        client.close()


def test_grpc_calls_are_counted_with_rest_in_the_same_series(logistic: Any, grpc_client: Any) -> None:
    from modelship.logic.scrape import parse_samples, request_counters

    before = request_counters(parse_samples(logistic.get("/metrics").text))
    tensor = tgrpc.InferInput("input", [1, 30], "FP32")
    tensor.set_data_from_numpy(X[:1])
    for _ in range(3):
        grpc_client.infer("logistic", [tensor])
    bad = tgrpc.InferInput("input", [1, 29], "FP32")
    bad.set_data_from_numpy(X[:1, :29].copy())
    with pytest.raises(InferenceServerException):
        grpc_client.infer("logistic", [bad])
    text = logistic.get("/metrics").text
    assert 'modelship_requests_total{code="200",endpoint="infer",model="logistic",protocol="grpc"}' in text
    assert 'modelship_request_duration_seconds_count{model="logistic",protocol="grpc"}' in text
    after = request_counters(parse_samples(text))
    assert after.by_code["200"] - before.by_code.get("200", 0) >= 3
    assert after.by_code["400"] - before.by_code.get("400", 0) >= 1
