"""Where a batch-1 JSON request's microseconds go, measured in-process without sockets.

The real ``HttpProtocol`` and ``App`` serve requests from 8 fake connections
(one request each per round, so micro-batching joins 8 as under ``wrk -c8``);
the CPU time of the serving thread per request is taken as the fastest tenth
of many short blocks (robust against other work on the machine). Stages are
then switched off one by one, each run keeping the earlier ones off, and the
differences are the stages' costs:

1. onnxruntime (the model returns a cached answer),
2. JSON decoding and input checks (``v2.decode_request`` returns a cached feed),
3. JSON encoding (a fixed answer),
4. drift counting and batch metrics,

and what is left is the HTTP stack, routing, the batcher and request metrics;
the floor (the same HTTP stack answering a canned response) is measured the
same way. Sockets are not included: the kernel's share is the same for every
server on the same stack, and ``make bench-serving`` measures it live.

Usage: python benches/serving/profile_json.py MODEL_DIR
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


class _Transport:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str) -> Any:
        return None

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _request(features: int) -> bytes:
    x = np.random.default_rng(0).normal(size=(1, features)).astype(np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, features], "datatype": "FP32",
                                   "data": [float(v) for v in x.ravel()]}]}).encode()
    return (b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s") % (b"MODEL", len(body), body)


async def _per_request_us(app: Any, request: bytes, conns: int = 8, blocks: int = 120, rounds: int = 25) -> float:
    from modelship_runtime.serving.server import HttpProtocol

    pairs = []
    for _ in range(conns):
        proto = HttpProtocol(app)
        transport = _Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        pairs.append((proto, transport))

    async def one_round(expected: int) -> int:
        for proto, _ in pairs:
            proto.data_received(request)
        expected += conns
        while sum(t.writes for _, t in pairs) < expected:
            await asyncio.sleep(0)
        return expected

    done = 0
    for _ in range(200):
        done = await one_round(done)
    times = []
    for _ in range(blocks):
        t0 = time.thread_time()
        for _ in range(rounds):
            done = await one_round(done)
        times.append(time.thread_time() - t0)
    times.sort()
    return times[len(times) // 10] / (rounds * conns) * 1e6


async def _measure(model_dir: Path) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    import floor_server

    from modelship_runtime.serving import codec, v2
    from modelship_runtime.serving.dataplane import DataPlane
    from modelship_runtime.serving.server import App
    from modelship_runtime.serving.settings import ServeSettings

    codec.quiet_numpy()
    settings = ServeSettings(model_uri=model_dir.as_uri())
    dp = DataPlane(settings)
    dp.load()
    gc.freeze()  # as the server does once the model is loaded
    assert dp.model is not None
    features = dp.model.inputs[0].shape[1]
    request = _request(features).replace(b"MODEL", dp.name.encode())
    app = App(dp, settings)
    runs = {"full": await _per_request_us(app, request)}

    answers: dict[int, Any] = {}
    real_run = dp.model.run

    def cached_run(feed: Any, small: bool = False) -> Any:
        rows = next(iter(feed.values())).shape[0]
        if rows not in answers:
            answers[rows] = real_run(feed, small)
        return answers[rows]

    dp.model.run = cached_run  # type: ignore[method-assign]
    dp.batcher._run = cached_run  # type: ignore[union-attr]
    runs["no onnxruntime"] = await _per_request_us(app, request)
    decoded = v2.decode_request(dp, request.split(b"\r\n\r\n", 1)[1])
    real_decode = v2.decode_request
    v2.decode_request = lambda *a, **k: decoded
    try:
        runs["no JSON decoding"] = await _per_request_us(app, request)
        real_encode = v2.encode_response
        v2.encode_response = lambda *a, **k: floor_server.CANNED
        try:
            runs["no JSON encoding"] = await _per_request_us(app, request)
            dp.batcher._on_batch = lambda *a: None  # type: ignore[union-attr]
            runs["no drift, no batch metrics"] = await _per_request_us(app, request)
        finally:
            v2.encode_response = real_encode
    finally:
        v2.decode_request = real_decode
    runs["floor"] = await _per_request_us(floor_server.FloorApp(), request)
    return runs


def stage_costs(model_dir: Path) -> tuple[dict[str, float], str]:
    """(per-stage microseconds, a printable table)."""
    from modelship_runtime.serving.cli import _loop_factory

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runs = runner.run(_measure(model_dir))
    stages = {
        "onnxruntime call (shared by the batch)": runs["full"] - runs["no onnxruntime"],
        "JSON decoding and input checks": runs["no onnxruntime"] - runs["no JSON decoding"],
        "JSON encoding": runs["no JSON decoding"] - runs["no JSON encoding"],
        "drift counting and batch metrics": runs["no JSON encoding"] - runs["no drift, no batch metrics"],
        "HTTP, routing, batcher, request metrics (beyond the floor)":
            runs["no drift, no batch metrics"] - runs["floor"],
        "the floor's own Python (httptools, the canned answer)": runs["floor"],
    }
    lines = [f"CPU per batch-1 JSON request, in-process, 8 connections (total {runs['full']:.1f} us):"]
    for name, us in stages.items():
        lines.append(f"  {name:60s} {us:6.1f} us  {us / runs['full']:5.0%}")
    return stages, "\n".join(lines)


if __name__ == "__main__":
    print(stage_costs(Path(sys.argv[1]))[1])
