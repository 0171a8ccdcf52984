"""Models from s3:// (a local S3: moto's server) and http(s)://, copied into the cache directory."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port

BODY = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}


def _aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


def test_s3_artifact_and_bare_file(s3_server: str, artifacts: dict[str, Path], start_server: Any,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    env = _aws_env(s3_server)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3")
    client.create_bucket(Bucket="models")
    for name in ("model.onnx", "metadata.json"):
        client.upload_file(str(artifacts["logistic"] / name), "models", f"churn/7/{name}")
    client.upload_file(str(artifacts["bare"]), "models", "byo/churn.onnx")
    cache = tmp_path / "cache"
    cache.mkdir()

    server = start_server("s3://models/churn/7", env={**env, "MODELSHIP_CACHE_DIR": str(cache)})
    assert server.post("/v2/models/logistic/infer", json=BODY).status_code == 200
    assert server.get("/v2/models/logistic").json()["parameters"]["drift_histograms"] is True
    assert sorted(p.name for p in cache.glob("*/*")) == ["metadata.json", "model.onnx"]

    bare = start_server("s3://models/byo/churn.onnx", env={**env, "MODELSHIP_CACHE_DIR": str(cache)})
    r = bare.post("/v2/models/churn/infer", json={"inputs": [{**BODY["inputs"][0], "name": "X"}]})
    assert r.status_code == 200, r.text

    missing = start_server("s3://models/nothing/here", env=env, ready=False)
    missing.wait_live()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "could not be fetched yet" not in missing.get("/v2/health/ready").text:
        time.sleep(0.1)
    assert missing.get("/v2/health/ready").status_code == 503
    assert "could not be fetched yet" in missing.get("/v2/health/ready").text


# --- The store down while a pod starts (issue 22, item 5) -------------------------


def test_store_down_at_start_is_retried_until_it_is_back(artifacts: dict[str, Path], start_server: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer


    port = free_port()
    env = {**_aws_env(f"http://127.0.0.1:{port}"), "MODELSHIP_LOAD_RETRY_MAX_SECONDS": "1"}
    server = start_server("s3://late/churn/1", env=env, ready=False)
    server.wait_live()
    time.sleep(1.5)
    ready = server.get("/v2/health/ready")
    assert ready.status_code == 503 and "could not be fetched yet" in ready.json()["reason"], ready.text
    assert server.get("/v2/health/live").status_code == 200  # well within the deadline
    store = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    store.start()
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        client = boto3.client("s3")
        client.create_bucket(Bucket="late")
        for name in ("model.onnx", "metadata.json"):
            client.upload_file(str(artifacts["logistic"] / name), "late", f"churn/1/{name}")
        server.wait_ready(timeout=15)
        assert server.post("/v2/models/logistic/infer", json=BODY).status_code == 200
        assert "Could not fetch model" in server.log_text()
    finally:
        store.stop()


def test_liveness_fails_once_the_load_deadline_passes(start_server: Any) -> None:

    env = {**_aws_env(f"http://127.0.0.1:{free_port()}"), "MODELSHIP_LOAD_DEADLINE_SECONDS": "2",
           "MODELSHIP_LOAD_RETRY_MAX_SECONDS": "0.5"}
    server = start_server("s3://gone/churn/1", env=env, ready=False)
    server.wait_live()
    assert server.get("/v2/health/live").status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and server.get("/v2/health/live").status_code == 200:
        time.sleep(0.2)
    live = server.get("/v2/health/live")
    assert live.status_code == 503, live.text
    assert live.json()["live"] is False and "MODELSHIP_LOAD_DEADLINE_SECONDS" in live.json()["reason"]
    assert server.get("/v2/health/ready").status_code == 503
    # A stop while it retries is prompt and clean.
    t0 = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t0 < 10


def test_http_bare_file(artifacts: dict[str, Path], start_server: Any, tmp_path: Path) -> None:
    root = artifacts["bare"].parent

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server = start_server(f"http://127.0.0.1:{httpd.server_address[1]}/churn.onnx",
                              env={"MODELSHIP_CACHE_DIR": str(tmp_path)})
        r = server.post("/v2/models/churn/infer", json={"inputs": [{**BODY["inputs"][0], "name": "X"}]})
        assert r.status_code == 200, r.text
    finally:
        httpd.shutdown()
