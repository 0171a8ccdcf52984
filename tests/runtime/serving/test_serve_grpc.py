"""gRPC on a real process: drain on SIGTERM, refusal, faults, limits, big messages, many streams.

Clients are grpcio's (what tritonclient.grpc uses underneath), with Triton's
generated messages, so the server is checked against an independent
implementation of both HTTP/2 and the OIP messages.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from conftest import Server

INFER = "/inference.GRPCInferenceService/ModelInfer"


def infer_request(rows: int = 1, model: str = "logistic", seed: int = 0) -> Any:
    x = np.random.default_rng(seed).normal(size=(rows, 30)).astype(np.float32)
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="FP32", shape=[rows, 30])
    req.raw_input_contents.append(x.tobytes())
    return req


def call(channel: grpc.Channel, method: str, request: Any, response: type[Any], timeout: float = 10) -> Any:
    stub = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response.FromString)
    return stub(request, timeout=timeout)


def raw_call(channel: grpc.Channel, data: bytes, path: str = INFER) -> tuple[grpc.StatusCode, str]:
    stub = channel.unary_unary(path)  # bytes in, bytes out
    try:
        stub(data, timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_sigterm_drains_grpc_calls_like_rest(artifacts: dict[str, Path], tmp_path: Path) -> None:
    server = Server(artifacts["logistic"].as_uri(), env={"MODELSHIP_DRAIN_SECONDS": "1.0",
                                                         "MODELSHIP_FAULT_LATENCY_MS": "20"},
                    log=tmp_path / "server.log")
    server.wait_ready()
    failures: list[str] = []
    done_before = [0]
    signalled = threading.Event()
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(server.grpc_target) as channel:
            while not stop.is_set():
                started_before = not signalled.is_set()
                try:
                    reply = call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse)
                except grpc.RpcError as exc:
                    if started_before:
                        failures.append(f"started before SIGTERM, then failed: {exc.code()} {exc.details()}")
                    return  # after the drain, refused connections are expected
                assert reply.raw_output_contents
                if started_before:
                    done_before[0] += 1

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    signalled.set()
    server.proc.send_signal(15)
    time.sleep(0.3)
    with grpc.insecure_channel(server.grpc_target) as fresh:
        # Readiness false at once; inference still answered during the drain window.
        assert call(fresh, "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready is False
        assert call(fresh, "ModelReady", pb.ModelReadyRequest(name="logistic"), pb.ModelReadyResponse).ready is False
        assert call(fresh, "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live is True
        assert call(fresh, "ModelInfer", infer_request(), pb.ModelInferResponse).raw_output_contents
    code = server.proc.wait(timeout=20)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert code == 0, server.log_text()
    assert not failures, failures[:5]
    assert done_before[0] > 20
    server.stop()


def test_refused_model_is_not_ready_over_grpc(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), "--expected-sha256", "1" * 64, ready=False)
    server.wait_live()
    time.sleep(0.5)
    with grpc.insecure_channel(server.grpc_target) as channel:
        assert call(channel, "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready is False
        with pytest.raises(grpc.RpcError) as info:
            call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
        assert "sha256 mismatch" in (info.value.details() or "") or info.value.code() == grpc.StatusCode.NOT_FOUND


def test_injected_faults_reach_grpc_and_count_as_5xx(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), env={"MODELSHIP_FAULT_ERROR_RATIO": "0.5"})
    codes = []
    with grpc.insecure_channel(server.grpc_target) as channel:
        for _ in range(40):
            try:
                call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                assert "injected fault" in (exc.details() or "")
                codes.append(exc.code())
    assert 5 <= codes.count(grpc.StatusCode.INTERNAL) <= 35 and codes.count(grpc.StatusCode.OK) >= 5
    metrics = server.get("/metrics").text
    assert 'code="500",endpoint="infer",model="logistic",protocol="grpc"' in metrics


def test_big_messages_both_ways_and_many_concurrent_streams(logistic: Any) -> None:
    # 16,384 rows: a 1.9 MB request (beyond any default window) and a 256 KiB answer.
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(logistic.grpc_target, options=options) as channel:
        big = call(channel, "ModelInfer", infer_request(rows=16384), pb.ModelInferResponse, timeout=60)
        labels = np.frombuffer(big.raw_output_contents[0], dtype=np.int64)
        assert labels.shape == (16384,) and set(labels.tolist()) <= {0, 1}
        stub = channel.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=pb.ModelInferResponse.FromString)
        futures = [stub.future(infer_request(rows=1 + k % 7, seed=k), timeout=30) for k in range(300)]
        for k, f in enumerate(futures):
            assert np.frombuffer(f.result().raw_output_contents[0], dtype=np.int64).shape == (1 + k % 7,)


def test_limits_and_garbage_get_a_status_not_a_crash(artifacts: dict[str, Path], start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), "--max-body-bytes", "4096")
    with grpc.insecure_channel(server.grpc_target) as channel:
        code, details = raw_call(channel, infer_request(rows=64).SerializeToString())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "4096" in details
        assert raw_call(channel, b"\xff\xff\xff")[0] == grpc.StatusCode.INVALID_ARGUMENT
        assert raw_call(channel, infer_request().SerializeToString()[:-7])[0] == grpc.StatusCode.INVALID_ARGUMENT
        code, details = raw_call(channel, b"", "/inference.GRPCInferenceService/RepositoryIndex")
        assert code == grpc.StatusCode.UNIMPLEMENTED
        lying = infer_request()
        lying.inputs[0].shape[:] = [2, 30]  # 240 bytes promised, 120 sent
        code, details = raw_call(channel, lying.SerializeToString())
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs 240 bytes" in details
        assert call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse).raw_output_contents
    # Not HTTP/2 at all: the connection is closed, the server carries on.
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        goaway = data[data.find(b"\x07\x00\x00\x00\x00\x00") - 3:]
        assert struct.unpack(">I", goaway[13:17])[0] == 1  # PROTOCOL_ERROR
    assert server.post("/v2/models/logistic/infer", json={"inputs": [
        {"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}).status_code == 200


def test_idle_grpc_connections_are_closed_and_clients_reconnect(artifacts: dict[str, Path],
                                                                start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri(), env={"MODELSHIP_IDLE_TIMEOUT_SECONDS": "1"})
    with grpc.insecure_channel(server.grpc_target) as channel:
        assert call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse).raw_output_contents
        time.sleep(3.5)  # reaped meanwhile (GOAWAY, then close)
        assert call(channel, "ModelInfer", infer_request(), pb.ModelInferResponse).raw_output_contents
