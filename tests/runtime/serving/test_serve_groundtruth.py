"""Request ids, the prediction log (Parquet segments) and the feedback endpoint, on real server processes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

N_FEATURES = 30
ROW = [0.1] * N_FEATURES


def v2_body(rows: int = 1, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [{"name": "input", "shape": [rows, N_FEATURES], "datatype": "FP32",
                                        "data": [[0.1 * (r + 1)] * N_FEATURES for r in range(rows)]}]}
    if request_id is not None:
        body["id"] = request_id
    return body


def segments(root: Path, kind: str = "predictions") -> list[Path]:
    return sorted((root / kind).rglob("*.parquet")) if (root / kind).exists() else []


def read_all(root: Path, kind: str = "predictions") -> Any:
    import pandas as pd

    files = segments(root, kind)
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True) if files else None


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def wait_rows(root: Path, n: int, kind: str = "predictions", timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = read_all(root, kind)
        if table is not None and len(table) >= n:
            return table
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} {kind} rows under {root} after {timeout} s")


def log_env(root: Path, **extra: str) -> dict[str, str]:
    return {"MODELSHIP_PREDICTION_LOG_URI": root.as_uri() + "/", "MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "MODELSHIP_REVISION": "rev-a", **extra}


def test_ids_are_generated_echoed_or_taken_from_the_header(logistic: Any, mixed: Any) -> None:
    made = logistic.post("/v2/models/logistic/infer", json=v2_body())
    assert made.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", made.json()["id"]), made.json()
    assert made.headers["x-request-id"] == made.json()["id"]
    again = logistic.post("/v2/models/logistic/infer", json=v2_body())
    assert again.json()["id"] != made.json()["id"]
    sent = logistic.post("/v2/models/logistic/infer", json=v2_body(request_id="order-17"),
                         headers={"x-request-id": "ignored"})
    assert sent.json()["id"] == "order-17" and sent.headers["x-request-id"] == "order-17"
    header = logistic.post("/v2/models/logistic/infer", json=v2_body(), headers={"X-Request-Id": "hdr-1"})
    assert header.json()["id"] == "hdr-1"
    v1 = mixed.post("/v1/models/mixed:predict", json={"instances": [[33.0, "nice", 3]]},
                    headers={"x-request-id": "v1-9"})
    assert v1.status_code == 200 and v1.json()["id"] == "v1-9" and v1.headers["x-request-id"] == "v1-9"
    v1_made = mixed.post("/v1/models/mixed:predict", json={"instances": [[33.0, "nice", 3]]})
    assert v1_made.json()["id"] == v1_made.headers["x-request-id"]
    too_long = logistic.post("/v2/models/logistic/infer", json=v2_body(request_id="x" * 300))
    assert too_long.status_code == 400 and "'id'" in too_long.json()["error"]
    empty = logistic.post("/v2/models/logistic/infer", json=v2_body(request_id=""))
    assert empty.status_code == 400


def test_tensor_model_logs_each_row_with_its_request_id(artifacts: dict[str, Path], start_server: Any,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "gt"
    server = start_server(artifacts["logistic"].as_uri(), env=log_env(root))
    answers = {}
    for i in range(5):
        r = server.post("/v2/models/logistic/infer", json=v2_body(rows=3, request_id=f"req-{i}"))
        assert r.status_code == 200
        out = {o["name"]: o["data"] for o in r.json()["outputs"]}
        answers[f"req-{i}"] = out
    table = wait_rows(root, 15)
    assert len(table) == 15
    assert list(table.columns[:5]) == ["request_id", "row", "time", "revision", "model_version"]
    assert [f"f{i}" for i in range(N_FEATURES)] == list(table.columns[5:5 + N_FEATURES])
    assert {"prediction", "proba_0", "proba_1"} <= set(table.columns)
    assert set(table["revision"]) == {"rev-a"} and set(table["model_version"]) == {"3"}
    for request_id, out in answers.items():
        rows = table[table["request_id"] == request_id].sort_values("row")
        assert list(rows["row"]) == [0, 1, 2]
        assert list(rows["prediction"]) == out["label"]
        np.testing.assert_allclose(rows[["proba_0", "proba_1"]].to_numpy().ravel(), out["probabilities"], rtol=1e-6)
        np.testing.assert_allclose(rows["f0"], [0.1, 0.2, 0.3], rtol=1e-6)
    assert str(table["time"].dtype) == "datetime64[us, UTC]"
    name = segments(root)[0].relative_to(root).as_posix()
    assert re.fullmatch(r"predictions/date=\d{4}-\d\d-\d\d/hour=\d\d/rev-a\.[^/]+\.[0-9a-f]{8}\.\d{6}\.parquet", name)
    metrics = server.get("/metrics").text
    assert 'modelship_prediction_log_rows_total{model="logistic",outcome="logged"} 15.0' in metrics
    assert 'modelship_prediction_log_segments_total{model="logistic",outcome="written"}' in metrics


def test_columns_model_logs_strings_and_ints_and_v1_requests(artifacts: dict[str, Path], start_server: Any,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "gt"
    server = start_server(artifacts["mixed"].as_uri(), env=log_env(root))
    r = server.post("/v1/models/mixed:predict", json={"instances": [[33.0, "nice", 3], [81.0, "lyon", 0]]})
    assert r.status_code == 200
    table = wait_rows(root, 2)
    assert list(table["request_id"]) == [r.json()["id"]] * 2
    assert list(table["city"]) == ["nice", "lyon"] and list(table["visits"]) == [3, 0]
    assert list(table["age"]) == [33.0, 81.0] and list(table["prediction"]) == r.json()["predictions"]


def test_a_stop_flushes_what_is_queued(artifacts: dict[str, Path], start_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "gt"
    server = start_server(artifacts["logistic"].as_uri(), env=log_env(root, MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS="600"))
    for i in range(4):
        assert server.post("/v2/models/logistic/infer", json=v2_body(request_id=f"s-{i}")).status_code == 200
    time.sleep(0.3)
    assert segments(root) == []
    assert server.stop() == 0
    table = read_all(root)
    assert sorted(table["request_id"]) == ["s-0", "s-1", "s-2", "s-3"]


def test_a_full_queue_drops_and_counts_and_sampling_skips(artifacts: dict[str, Path], start_server: Any,
                                                           tmp_path: Path) -> None:
    full = start_server(artifacts["logistic"].as_uri(), env=log_env(
        tmp_path / "full", MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS="600", MODELSHIP_PREDICTION_LOG_MAX_QUEUE_ROWS="4",
        MODELSHIP_PREDICTION_LOG_SEGMENT_ROWS="1000"))
    for _ in range(3):
        assert full.post("/v2/models/logistic/infer", json=v2_body(rows=2)).status_code == 200
    metrics = full.get("/metrics").text
    assert 'outcome="logged"} 4.0' in metrics and 'outcome="dropped"} 2.0' in metrics
    assert 'modelship_prediction_log_queue_rows{model="logistic"} 4.0' in metrics
    none = start_server(artifacts["logistic"].as_uri(), env=log_env(
        tmp_path / "none", MODELSHIP_PREDICTION_LOG_SAMPLE_RATIO="0"))
    for _ in range(3):
        assert none.post("/v2/models/logistic/infer", json=v2_body()).status_code == 200
    assert 'outcome="sampled_out"} 3.0' in none.get("/metrics").text


def test_feedback_appends_labels_and_refuses_bad_bodies(artifacts: dict[str, Path], start_server: Any,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "gt"
    server = start_server(artifacts["logistic"].as_uri(), env=log_env(root, MODELSHIP_FEEDBACK_TOKEN="s3cret"))
    auth = {"Authorization": "Bearer s3cret"}
    url = "/v2/models/logistic/feedback"
    ok = server.post(url, json={"id": "a", "label": 1}, headers=auth)
    assert ok.status_code == 200 and ok.json() == {"accepted": 1}
    many = server.post(url, json={"labels": [{"id": "b", "label": 0}, {"id": "c", "row": 2, "label": 1.0},
                                             {"id": "d", "label": "yes"}, {"id": "e", "label": True}]}, headers=auth)
    assert many.json() == {"accepted": 4}
    labels = wait_rows(root, 5, "labels")
    assert sorted(zip(labels["request_id"], labels["row"], labels["label"], strict=True)) == [
        ("a", 0, "1"), ("b", 0, "0"), ("c", 2, "1"), ("d", 0, "yes"), ("e", 0, "1")]
    assert all(p.relative_to(root).as_posix().startswith("labels/feedback/date=") for p in segments(root, "labels"))
    cases = [
        ({"id": "a", "label": 1}, {}, 401, "Bearer"),
        ({"id": "a", "label": 1}, {"Authorization": "Bearer nope"}, 401, "Bearer"),
        ({"label": 1}, auth, 400, "'id'"),
        ({"id": "a"}, auth, 400, "'label' is missing"),
        ({"id": "a", "label": None}, auth, 400, "'label'"),
        ({"id": "a", "label": 1, "row": -1}, auth, 400, "'row'"),
        ({"labels": []}, auth, 400, "non-empty"),
        ({"labels": [{"id": "a", "label": 1}, 5]}, auth, 400, "labels[1]"),
        ([1, 2], auth, 400, "JSON object"),
    ]
    for body, headers, code, text in cases:
        r = server.post(url, json=body, headers=headers)
        assert r.status_code == code and text in r.json()["error"], (body, r.status_code, r.text)
    bad_json = server.post(url, data=b"{", headers=auth)
    assert bad_json.status_code == 400 and "malformed JSON" in bad_json.json()["error"]
    assert server.get(url).status_code == 405
    assert "modelship_feedback_labels_total" in server.get("/metrics").text


def test_feedback_is_404_without_a_store(logistic: Any) -> None:
    r = logistic.post("/v2/models/logistic/feedback", json={"id": "a", "label": 1})
    assert r.status_code == 404 and "MODELSHIP_PREDICTION_LOG_URI" in r.json()["error"]


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_segments_to_s3(artifacts: dict[str, Path], start_server: Any, s3_server: str, codec: str) -> None:
    import io

    import boto3

    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    bucket = f"gt-{codec}"
    client.create_bucket(Bucket=bucket)
    server = start_server(artifacts["logistic"].as_uri(), env={
        **env, "MODELSHIP_PREDICTION_LOG_URI": f"s3://{bucket}/ns/_groundtruth/logistic/",
        "MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS": "0.2", "MODELSHIP_PREDICTION_LOG_CODEC": codec})
    r = server.post("/v2/models/logistic/infer", json=v2_body(rows=2))
    assert r.status_code == 200
    keys = wait_for(lambda: [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert keys[0].startswith("ns/_groundtruth/logistic/predictions/date=")
    table = pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()))
    assert table.column("request_id").to_pylist() == [r.json()["id"]] * 2


def test_grpc_requests_get_ids_and_are_logged(artifacts: dict[str, Path], start_server: Any, tmp_path: Path) -> None:
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    root = tmp_path / "gt"
    server = start_server(artifacts["logistic"].as_uri(), env=log_env(root))

    def infer(request_id: str = "", metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        req = pb.ModelInferRequest(model_name="logistic", id=request_id)
        req.inputs.add(name="input", datatype="FP32", shape=[2, N_FEATURES])
        req.raw_input_contents.append(np.full((2, N_FEATURES), 0.1, dtype=np.float32).tobytes())
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=pb.ModelInferResponse.FromString)
            return stub(req, timeout=10, metadata=metadata)

    assert infer("grpc-1").id == "grpc-1"
    assert infer(metadata=(("x-request-id", "grpc-hdr"),)).id == "grpc-hdr"
    made = infer().id
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", made)
    table = wait_rows(root, 6)
    assert sorted(set(table["request_id"])) == sorted({"grpc-1", "grpc-hdr", made})
    assert list(table[table["request_id"] == "grpc-1"]["row"]) == [0, 1]


def test_binary_rest_requests_return_their_id_in_a_header(artifacts: dict[str, Path], start_server: Any,
                                                          tmp_path: Path) -> None:
    import json as _json

    server = start_server(artifacts["logistic"].as_uri(), env=log_env(tmp_path / "gt"))
    header = _json.dumps({"id": "bin-7", "inputs": [{"name": "input", "shape": [1, N_FEATURES], "datatype": "FP32",
                                                      "parameters": {"binary_data_size": 4 * N_FEATURES}}],
                          "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    body = header + np.full(N_FEATURES, 0.1, dtype=np.float32).tobytes()
    r = server.post("/v2/models/logistic/infer", data=body,
                    headers={"Inference-Header-Content-Length": str(len(header)),
                             "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "bin-7" and "inference-header-content-length" in r.headers
    assert wait_rows(tmp_path / "gt", 1)["request_id"].tolist() == ["bin-7"]
