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


# -- the binary tensor extension and gRPC ---------------------------------------------

binary_params = st.fixed_dictionaries({}, optional={
    "binary_data_size": st.integers(min_value=-5, max_value=400) | json_scalars,
    "binary_data": st.booleans() | json_scalars,
})
binary_tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "age", "city", "visits", "zz"]), "shape": shapes, "datatype": datatypes},
    optional={"parameters": binary_params | json_values, "data": numbers},
)
binary_docs = st.fixed_dictionaries(
    {"inputs": st.lists(binary_tensors, max_size=3)},
    optional={"outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "probabilities", "x"])},
                                                        optional={"parameters": binary_params | json_values}),
                                  max_size=2),
              "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": json_scalars})},
)
header_lengths = st.one_of(st.none(), st.integers(min_value=-3, max_value=2000).map(str),
                           st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=6),
                           st.just("0"), st.just("1e3"), st.just("99999999999999999999"))


@pytest.mark.slow
def test_binary_extension_bodies_never_5xx(logistic: Any, mixed: Any) -> None:
    import json

    rss_before = logistic.rss_kib()

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=binary_docs, blob=st.binary(max_size=300), length=header_lengths, honest=st.booleans())
    def check(doc: Any, blob: bytes, length: str | None, honest: bool) -> None:
        head = json.dumps(doc).encode()
        if honest and length is not None:
            length = str(len(head))
        headers = {} if length is None else {"Inference-Header-Content-Length": length}
        for server, model in ((logistic, "logistic"), (mixed, "mixed")):
            r = server.post(f"/v2/models/{model}/infer", data=head + blob, headers=headers)
            assert r.status_code < 500, (doc, length, r.status_code, r.text)
            if r.status_code != 200:
                assert "error" in r.json()

    check()
    assert logistic.proc.poll() is None and mixed.proc.poll() is None
    assert logistic.rss_kib() - rss_before < 20 * 1024


GRPC_CRASH_CODES = {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS"}


@pytest.mark.slow
def test_grpc_garbage_and_truncated_protobufs_are_invalid_argument(logistic: Any, mixed: Any) -> None:
    import grpc
    import numpy as np
    from tritonclient.grpc import service_pb2 as pb

    good = pb.ModelInferRequest(model_name="logistic")
    good.inputs.add(name="input", datatype="FP32", shape=[2, 30])
    good.raw_input_contents.append(np.ones((2, 30), np.float32).tobytes())
    wire = good.SerializeToString()
    requests_ = st.builds(
        lambda model, tensors, raw, outputs: pb.ModelInferRequest(
            model_name=model, inputs=tensors, raw_input_contents=raw,
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=o) for o in outputs]),
        st.sampled_from(["logistic", "mixed", "", "zz"]),
        st.lists(st.builds(
            lambda name, datatype, shape, f32, i64, s: pb.ModelInferRequest.InferInputTensor(
                name=name, datatype=datatype, shape=shape,
                contents=pb.InferTensorContents(fp32_contents=f32, int64_contents=i64, bytes_contents=s)),
            st.sampled_from(["input", "age", "city", "visits", "zz"]), datatypes,
            st.lists(st.integers(min_value=-3, max_value=70), max_size=3),
            st.lists(st.floats(width=32), max_size=70), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
            st.lists(st.binary(max_size=5), max_size=4)), max_size=3),
        st.lists(st.binary(max_size=260), max_size=3),
        st.lists(st.sampled_from(["label", "probabilities", "x"]), max_size=2),
    )

    with grpc.insecure_channel(logistic.grpc_target) as ch1, grpc.insecure_channel(mixed.grpc_target) as ch2:
        stubs = [ch.unary_unary("/inference.GRPCInferenceService/ModelInfer") for ch in (ch1, ch2)]

        def status(stub: Any, data: bytes) -> str:
            try:
                stub(data, timeout=10)
            except grpc.RpcError as exc:
                return str(exc.code().name)
            return "OK"

        for cut in range(0, len(wire), 7):
            assert status(stubs[0], wire[:cut]) in {"OK", "INVALID_ARGUMENT", "NOT_FOUND"}, cut

        @settings(max_examples=200, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(garbage=st.binary(max_size=300), request=requests_, flip=st.integers(0, 10_000))
        def check(garbage: bytes, request: Any, flip: int) -> None:
            structured = request.SerializeToString()
            mutated = bytearray(wire)
            mutated[flip % len(mutated)] ^= 1 + flip % 255
            for stub in stubs:
                for data in (garbage, structured, bytes(mutated)):
                    code = status(stub, data)
                    assert code not in GRPC_CRASH_CODES, (code, data[:80])

        check()
    assert logistic.proc.poll() is None and mixed.proc.poll() is None


@pytest.mark.slow
def test_http2_frame_garbage_never_takes_the_server_down(logistic: Any) -> None:
    import socket
    import struct

    import grpc

    from modelship_runtime.serving import h2, hpack

    request_block = hpack.encode_indexed(3) + hpack.encode_literal(b":path", b"/inference.GRPCInferenceService/ServerLive")
    frames_ = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 255), st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
                                 st.binary(max_size=40) | st.just(request_block)), max_size=8)

    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=frames_, preface=st.booleans())
    def check(frames: list[tuple[int, int, int, bytes]], preface: bool) -> None:
        wire = (h2.PREFACE if preface else b"") + b"".join(
            struct.pack(">I", len(p))[1:] + bytes((k, f)) + struct.pack(">I", s) + p for k, f, s, p in frames)
        with socket.create_connection(("127.0.0.1", logistic.grpc_port), timeout=5) as s:
            s.sendall(wire)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            try:
                while s.recv(65536):
                    pass
            except (TimeoutError, ConnectionResetError):
                pass

    check()
    assert logistic.proc.poll() is None
    with grpc.insecure_channel(logistic.grpc_target) as channel:
        live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=10)
        assert live == b"\x08\x01"
