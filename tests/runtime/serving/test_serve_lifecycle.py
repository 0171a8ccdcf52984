"""Readiness, sha256 refusal, SIGTERM under load, workers, and the test-only faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from conftest import Server

BODY = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.25] * 30}]}


def test_sha256_mismatch_never_becomes_ready(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), "--expected-sha256", "0" * 64, ready=False)
    server.wait_live()
    time.sleep(0.5)
    r = server.get("/v2/health/ready")
    assert r.status_code == 503
    assert r.json()["ready"] is False and "sha256 mismatch" in r.json()["reason"]
    assert server.get("/v2/models/logistic/ready").status_code == 503
    infer = server.post("/v2/models/logistic/infer", json=BODY)
    assert infer.status_code in (404, 503)
    assert "sha256 mismatch" in server.log_text()


def test_expected_sha256_from_env_accepts_the_right_model(artifacts: dict[str, Path], start_server: Any) -> None:
    import hashlib

    sha = hashlib.sha256((artifacts["logistic"] / "model.onnx").read_bytes()).hexdigest()
    server = start_server(artifacts["logistic"].as_uri(), env={"MODELSHIP_EXPECTED_SHA256": sha,
                                                               "MODELSHIP_MODEL_NAME": "renamed"})
    assert server.post("/v2/models/renamed/infer", json=BODY).status_code == 200


def test_missing_artifact_is_not_ready_with_a_reason_until_it_appears(
        artifacts: dict[str, Path], tmp_path: Path, start_server: Any) -> None:
    import shutil

    server = start_server((tmp_path / "later").as_uri(), "--load-retry-max-seconds", "0.5", ready=False)
    server.wait_live()
    time.sleep(0.3)
    r = server.get("/v2/health/ready")
    assert r.status_code == 503 and "could not be fetched yet" in r.json()["reason"]
    assert "retrying in" in r.json()["reason"]
    shutil.copytree(artifacts["logistic"], tmp_path / "later")  # a volume mounted late, say
    server.wait_ready(timeout=10)
    assert server.post("/v2/models/logistic/infer", json=BODY).status_code == 200


def test_sigterm_under_load_fails_no_accepted_request(artifacts: dict[str, Path], tmp_path: Path) -> None:
    server = Server(artifacts["logistic"].as_uri(), env={"MODELSHIP_DRAIN_SECONDS": "1.0",
                                                         "MODELSHIP_FAULT_LATENCY_MS": "20"},
                    log=tmp_path / "server.log")
    server.wait_ready()
    failures: list[str] = []
    done_before = [0]
    sent_before_signal: list[int] = []
    signalled = threading.Event()
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            started_before = not signalled.is_set()
            try:
                r = session.post(server.url + "/v2/models/logistic/infer", json=BODY, timeout=10)
            except requests.ConnectionError as exc:
                if started_before:
                    failures.append(f"accepted before SIGTERM, then failed: {exc}")
                return  # after the drain window, refused connections are expected
            if r.status_code != 200:
                failures.append(f"status {r.status_code}: {r.text}")
            elif started_before:
                done_before[0] += 1
                sent_before_signal.append(1)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    signalled.set()
    server.proc.send_signal(15)
    time.sleep(0.3)
    # Readiness goes false at once, while requests are still served in the drain window.
    ready = requests.get(server.url + "/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert requests.post(server.url + "/v2/models/logistic/infer", json=BODY, timeout=5).status_code == 200
    code = server.proc.wait(timeout=20)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert code == 0, server.log_text()
    assert not failures, failures[:5]
    assert done_before[0] > 20
    assert "Received a stop signal" in server.log_text()
    server.stop()


def test_workers_share_the_port(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), "--workers", "2")
    pid = server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 2
    deadline = time.monotonic() + 30  # the fixture saw one worker ready; wait for both
    while time.monotonic() < deadline and server.log_text().count("Loaded model") < 2:
        time.sleep(0.05)
    assert server.log_text().count("Loaded model") == 2
    for _ in range(20):
        with requests.Session() as s:  # a new connection each time: the kernel spreads them
            assert s.post(server.url + "/v2/models/logistic/infer", json=BODY, timeout=5).status_code == 200
    code = server.stop()
    assert code == 0, server.log_text()
    assert all(not Path(f"/proc/{c}").exists() for c in children)


def test_fault_injection_makes_a_canary_fail(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(),
                          env={"MODELSHIP_FAULT_ERROR_RATIO": "0.5", "MODELSHIP_FAULT_LATENCY_MS": "30"})
    codes = []
    t0 = time.monotonic()
    for _ in range(40):
        r = server.post("/v2/models/logistic/infer", json=BODY)
        codes.append(r.status_code)
        if r.status_code == 500:
            assert "injected fault" in r.json()["error"]
    assert 5 <= codes.count(500) <= 35 and codes.count(200) >= 5
    assert time.monotonic() - t0 > codes.count(200) * 0.03 * 0.9
    assert 'code="500"' in server.get("/metrics").text


def test_slow_and_idle_connections_are_closed(artifacts: dict[str, Path], start_server: Any) -> None:
    import socket

    server = start_server(artifacts["logistic"].as_uri(), env={"MODELSHIP_IDLE_TIMEOUT_SECONDS": "1"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        slow.sendall(b"POST /v2/models/logistic/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert slow.recv(4096) == b""  # closed by the server, not answered
        assert idle.recv(4096) == b""
        assert time.monotonic() - t0 < 5
    assert server.post("/v2/models/logistic/infer", json=BODY).status_code == 200


def test_flipped_labels_fault_answers_the_other_class(artifacts: dict[str, Path], start_server: Any) -> None:
    """A Ready, healthy server that is wrong: what a shadow's agreement with the stable catches."""
    body = {"inputs": [{"name": "input", "shape": [4, 30], "datatype": "FP32",
                        "data": [0.25] * 60 + [-0.5] * 60}]}
    honest = start_server(artifacts["logistic"].as_uri())
    flipped = start_server(artifacts["logistic"].as_uri(), env={"MODELSHIP_FAULT_FLIP_LABELS": "true"})

    def labels(server: Any) -> list[int]:
        r = server.post("/v2/models/logistic/infer", json=body)
        assert r.status_code == 200
        return next(o["data"] for o in r.json()["outputs"] if o["name"] == "label")

    truth = labels(honest)
    assert labels(flipped) == [1 - v for v in truth]
    honest.stop()
    flipped.stop()
