"""The binary tensor data extension over raw HTTP: every lie a body can tell is a 400 naming it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

X = np.random.default_rng(1).normal(size=(2, 30)).astype(np.float32)
BLOB = X.tobytes()


def header(size: int | None = len(BLOB), shape: list[int] | None = None, **extra: Any) -> bytes:
    params = {} if size is None else {"binary_data_size": size}
    doc = {"inputs": [{"name": "input", "shape": shape or [2, 30], "datatype": "FP32", "parameters": params}],
           **extra}
    return json.dumps(doc).encode()


def post(server: Any, body: bytes, length: Any) -> Any:
    headers = {} if length is None else {"Inference-Header-Content-Length": str(length)}
    return server.post("/v2/models/logistic/infer", data=body, headers=headers)


def test_binary_request_with_json_answer_equals_json_request(logistic: Any) -> None:
    h = header()
    r = post(logistic, h + BLOB, len(h))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    json_body = {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP32", "data": X.ravel().tolist()}]}
    assert r.json() == logistic.post("/v2/models/logistic/infer", json=json_body).json()


def test_binary_answer_layout(logistic: Any) -> None:
    h = header(outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}])
    r = post(logistic, h + BLOB, len(h))
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    doc = json.loads(r.content[:n])
    proba, label = doc["outputs"]
    assert proba["parameters"] == {"binary_data_size": 16} and "data" not in proba
    assert label["data"] in ([0, 0], [0, 1], [1, 0], [1, 1])
    values = np.frombuffer(r.content[n:], dtype=np.float32).reshape(2, 2)
    np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-6)
    everything = header(parameters={"binary_data_output": True})
    r = post(logistic, everything + BLOB, len(everything))
    n = int(r.headers["inference-header-content-length"])
    assert len(r.content) == n + 2 * 8 + 2 * 2 * 4


LIES: list[tuple[str, bytes, Any, str]] = [
    ("header longer than the body", header() + BLOB, 10**6, "the body has only"),
    ("header length not a number", header() + BLOB, "12x", "non-negative integer"),
    ("negative header length", header() + BLOB, "-5", "non-negative integer"),
    ("zero header length", header() + BLOB, 0, "is 0"),
    ("header cuts the JSON", header() + BLOB, len(header()) - 3, "malformed JSON"),
    ("blob shorter than binary_data_size", header(size=len(BLOB) + 4) + BLOB, len(header(size=len(BLOB) + 4)),
     "runs past the end"),
    ("blob longer than the shape", header(size=len(BLOB), shape=[1, 30]) + BLOB, len(header(shape=[1, 30])),
     "needs 120 bytes"),
    ("bytes left over", header(size=len(BLOB) - 8) + BLOB, len(header(size=len(BLOB) - 8)), "needs 240 bytes"),
    ("trailing bytes", header() + BLOB + b"junk", len(header()), "4 bytes of binary data follow"),
    ("negative binary_data_size", header(size=-1) + BLOB, len(header(size=-1)), "non-negative integer"),
    ("binary_data_size a string", header(size="240") + BLOB, len(header(size="240")), "non-negative integer"),  # type: ignore[arg-type]
    ("binary_data_size without the header", header(), None, "no Inference-Header-Content-Length"),
    ("binary_data_output not a bool", header(parameters={"binary_data_output": "yes"}) + BLOB,
     len(header(parameters={"binary_data_output": "yes"})), "true or false"),
    ("classification asked", header(outputs=[{"name": "label", "parameters": {"classification": 2}}]) + BLOB,
     len(header(outputs=[{"name": "label", "parameters": {"classification": 2}}])), "classification"),
]


@pytest.mark.parametrize(("case", "body", "length", "message"), LIES, ids=[c[0] for c in LIES])
def test_lying_binary_bodies_are_400(logistic: Any, case: str, body: bytes, length: Any, message: str) -> None:
    r = post(logistic, body, length)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.json()


def test_nan_in_binary_data_is_refused_unless_missing_values_are_allowed(logistic: Any) -> None:
    x = X.copy()
    x[1, 3] = np.nan
    h = header()
    r = post(logistic, h + x.tobytes(), len(h))
    assert r.status_code == 400 and "NaN" in r.json()["error"]


def test_binary_strings_and_bools_are_checked(types_server: Any) -> None:
    def body(blob_s: bytes, blob_b: bytes) -> tuple[bytes, int]:
        inputs = []
        blobs = []
        for name, dt, values in (("i32", "INT32", np.zeros((1, 2), np.int32)), ("i64", "INT64", np.zeros((1, 2), np.int64)),
                                 ("f32", "FP32", np.zeros((1, 2), np.float32)), ("f64", "FP64", np.zeros((1, 2), np.float64))):
            inputs.append({"name": name, "shape": [1, 2], "datatype": dt, "parameters": {"binary_data_size": values.nbytes}})
            blobs.append(values.tobytes())
        inputs.append({"name": "s", "shape": [1, 2], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob_s)}})
        inputs.append({"name": "b", "shape": [1, 2], "datatype": "BOOL", "parameters": {"binary_data_size": len(blob_b)}})
        h = json.dumps({"inputs": inputs}).encode()
        return h + b"".join(blobs) + blob_s + blob_b, len(h)

    good_s = b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"
    b, n = body(good_s, b"\x01\x00")
    assert post_types(types_server, b, n).status_code == 200
    for blob_s, blob_b, message in (
        (b"\x01\x00\x00\x00a\xff\x00\x00\x00bc", b"\x01\x00", "claims 255 bytes"),
        (b"\x01\x00\x00\x00a", b"\x01\x00", "ends after 1 of 2"),
        (good_s + b"x", b"\x01\x00", "beyond its 2 elements"),
        (b"\x01\x00\x00\x00\xff\x01\x00\x00\x00a", b"\x01\x00", "not UTF-8"),
        (good_s, b"\x01\x07", "0 or 1"),
    ):
        b, n = body(blob_s, blob_b)
        r = post_types(types_server, b, n)
        assert r.status_code == 400 and message in r.json()["error"], r.text


def post_types(server: Any, body: bytes, n: int) -> Any:
    return server.post("/v2/models/types/infer", data=body, headers={"Inference-Header-Content-Length": str(n)})
