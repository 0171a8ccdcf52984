"""Serving benchmark: modelship-serve against MLServer and KServe's Python server, and against the limits.

Same two models (a scaler + logistic-regression pipeline and a 100-tree random
forest, 30 features, ONNX), same Open Inference Protocol v2 requests, one load
generator per transport on 127.0.0.1 (wrk for HTTP/1.1, h2load for gRPC, one
thread each, one request in flight per connection), batch 1 and 32 at 8 and 64
connections. Transports: OIP JSON (every server), OIP binary tensors over
REST (modelship-serve; Triton's extension, which MLServer and KServe's
Python server do not speak) and OIP gRPC (modelship-serve, MLServer).

Limits measured in the same run: onnxruntime called in-process (no transport
at all), the HTTP floor and the gRPC floor (modelship-serve's own HTTP/1.1 and
HTTP/2 stacks answering a fixed response without parsing or inference). Also
measured: the cost of the drift histograms (in-process per row, and live
against the same model served as a bare .onnx without metadata), the forest
at batch 1024 over each transport, and where a batch-1 JSON request's
microseconds go (``profile_json.py`` in-process, and py-spy's view of the live
server under load).

Goals (README, issue 21), asserted at the end:
- forest at batch 1024: binary REST or gRPC >= 80% of in-process onnxruntime rows/s;
- gRPC at batch 1 >= 5x MLServer's gRPC requests/s (every model and connection count);
- JSON at batch 1 >= 50% of the HTTP floor (logistic, 8 and 64 connections).

Peers live in their own virtual environments under
${XDG_CACHE_HOME:-~/.cache}/modelship/bench-venvs (created on first run with
pip). Run: ``make bench-serving`` (or ``make bench``). Knobs: BENCH_SECONDS
(per run, default 3), BENCH_ROUNDS (default 2), BENCH_PEERS (default
"mlserver,kserve"), BENCH_GOALS=assert (fail on a missed issue-21 goal; README's bounds are always asserted).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "runtime" / "serving"))
sys.path.insert(0, str(HERE))
import serve_models  # noqa: E402  (the same artifact builders the tests use)

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelship"
VENVS = CACHE / "bench-venvs"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PEERS = [p for p in os.environ.get("BENCH_PEERS", "mlserver,kserve").split(",") if p]
GOALS_ASSERTED = os.environ.get("BENCH_GOALS", "") == "assert"
PEER_PACKAGES = {
    "mlserver": ["mlserver==1.7.1", "uvloop<0.22", f"onnxruntime=={ort.__version__}", "numpy<3"],
    "kserve": ["kserve==0.21.0", f"onnxruntime=={ort.__version__}", "numpy<3"],
}
# The bounds README states, asserted at the end once the table is printed: against each peer
# (MLServer, KServe) in the same run, and against the limits measured in the same run.
MIN_VS_PEERS = {1: 3, 32: 2}  # batch → modelship-serve req/s over each peer's, every model and conns
MAX_P99_VS_MLSERVER_BATCH1 = 0.5  # at most half MLServer's p99 at batch 1
MIN_SHARE_OF_HTTP_FLOOR = 0.2  # logistic, batch 1
MIN_SHARE_OF_IN_PROCESS_1024 = 0.2  # forest rows/s at batch 1024 over HTTP vs onnxruntime in-process
MAX_DRIFT_US_PER_ROW = 10  # drift histograms' counting cost at batch 1
MIN_LIVE_DRIFT_RATIO = 0.7  # req/s with drift histograms over without, batch 1 and 32
BATCHES = (1, 32)
CONNECTIONS = (8, 64)
THREADS = str(min(2, os.cpu_count() or 1))
INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Run:
    model: str
    server: str  # e.g. "modelship-serve", "mlserver", "http-floor"
    transport: str  # json, binary, grpc
    batch: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rows(self) -> float:
        return self.rps * self.batch


@dataclass(frozen=True)
class Target:
    server: str
    transport: str
    url: str  # http://host:port/path (gRPC: the method's URL for h2load)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_venv(name: str) -> Path | None:
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / ".modelship-bench-ok"
    if marker.exists():
        return python
    print(f"Creating the {name} venv in {venv} (pip; needs PyPI)", flush=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES[name]], check=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"Skipped {name}: could not build its venv ({exc})", flush=True)
        return None
    marker.write_text(" ".join(PEER_PACKAGES[name]))
    return python


def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@contextmanager
def process(cmd: list[str], ready_url: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=out,
                            start_new_session=True)
    try:
        wait_http(ready_url, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group we created: the server and its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if hasattr(out, "close"):
            out.close()


# -- request bodies ---------------------------------------------------------------------

def features(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, serve_models.N_FEATURES)).astype(np.float32)


def json_body(batch: int) -> bytes:
    x = features(batch)
    return json.dumps({"inputs": [{"name": "input", "shape": [batch, serve_models.N_FEATURES],
                                   "datatype": "FP32", "data": [float(v) for v in x.ravel()]}]}).encode()


def binary_body(batch: int) -> tuple[bytes, int]:
    """Triton's binary extension, both ways: (body, Inference-Header-Content-Length)."""
    blob = features(batch).tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [batch, serve_models.N_FEATURES], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(blob)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head + blob, len(head)


def grpc_body(model: str, batch: int) -> bytes:
    """A length-prefixed ModelInferRequest with raw_input_contents (Triton's own messages)."""
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="FP32", shape=[batch, serve_models.N_FEATURES])
    req.raw_input_contents.append(features(batch).tobytes())
    data: bytes = req.SerializeToString()
    return b"\x00" + struct.pack(">I", len(data)) + data


def _lua_string(data: bytes) -> str:
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in data) + '"'


def lua_script(workdir: Path, transport: str, batch: int) -> Path:
    path = workdir / f"post-{transport}-{batch}.lua"
    if not path.exists():
        if transport == "json":
            payload, headers = json_body(batch), {"Content-Type": "application/json"}
        else:
            payload, n = binary_body(batch)
            headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(n)}
        lines = ['wrk.method = "POST"']
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
        lines.append(f"wrk.body = {_lua_string(payload)}")
        path.write_text("\n".join(lines) + "\n")
    return path


def grpc_file(workdir: Path, model: str, batch: int) -> Path:
    path = workdir / f"grpc-{model}-{batch}.bin"
    if not path.exists():
        path.write_bytes(grpc_body(model, batch))
    return path


# -- load generators ------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, script: Path, connections: int, seconds: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s",
         "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # Anchored: "93.50%" in the thread stats must not pass for the 50th percentile.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return rps, p50, p99, errors


def h2load(url: str, body: Path, connections: int, seconds: float, log: Path) -> tuple[float, float, float, int]:
    """gRPC unary calls, one in flight per connection (as wrk): h2load with a per-request log for percentiles."""
    log.unlink(missing_ok=True)
    out = subprocess.run(
        ["h2load", "-t1", "-c", str(connections), "-m1", "-D", str(max(1, round(seconds))), "--warm-up-time=300ms",
         "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    errors = int(m.group(3)) + int(m.group(4)) if m else 0
    if m := re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out):
        errors += int(m.group(3)) + int(m.group(4))
    latencies = np.array([float(line.split()[2]) for line in log.read_text().splitlines() if line.strip()])
    p50, p99 = (np.percentile(latencies, [50, 99]) / 1000.0) if latencies.size else (float("nan"),) * 2
    return rps, float(p50), float(p99), errors


def load(target: Target, workdir: Path, model: str, batch: int, conns: int, seconds: float) -> tuple[float, float, float, int]:
    if target.transport == "in-process":  # the limit, interleaved with the servers (url: the model file)
        return in_process(Path(target.url), batch, seconds), float("nan"), float("nan"), 0
    if target.transport == "grpc":
        return h2load(target.url, grpc_file(workdir, model, batch), conns, seconds, workdir / "h2load.log")
    return wrk(target.url, lua_script(workdir, target.transport, batch), conns, seconds)


def check_answer(target: Target, model: str) -> None:
    """One request through an independent client: the body the load generator sends gets a real answer."""
    if target.transport == "grpc":
        import grpc
        from tritonclient.grpc import service_pb2

        host = target.url.split("//")[1].split("/")[0]
        with grpc.insecure_channel(host) as channel:
            call = channel.unary_unary(INFER, request_serializer=None,
                                       response_deserializer=service_pb2.ModelInferResponse.FromString)
            reply = call(grpc_body(model, 2)[5:], timeout=10)
        assert reply.raw_output_contents or reply.outputs, reply
        return
    if target.transport == "json":
        req = urllib.request.Request(target.url, data=json_body(2), headers={"Content-Type": "application/json"})
    else:
        data, n = binary_body(2)
        req = urllib.request.Request(target.url, data=data, headers={"Inference-Header-Content-Length": str(n)})
    with urllib.request.urlopen(req, timeout=10) as r:
        n = int(r.headers.get("Inference-Header-Content-Length") or 0)
        raw = r.read()
    doc = json.loads(raw[:n] if n else raw)
    assert doc["outputs"], doc


def measure_interleaved(model: str, targets: list[Target], workdir: Path, runs: list[Run],
                        batches: tuple[int, ...] = BATCHES, connections: tuple[int, ...] = CONNECTIONS) -> None:
    """Each configuration runs on every target back to back, ROUNDS times; the best round counts.

    Other work on the machine comes and goes: interleaving gives every server
    the same conditions, and the best of a few rounds is the least disturbed.
    """
    for t in targets:
        if t.server not in ("http-floor", "grpc-floor", "onnxruntime"):
            check_answer(t, model)
    for batch in batches:
        for t in targets:
            load(t, workdir, model, batch, connections[0], 1.0)  # warm-up
        for conns in connections:
            best: dict[Target, tuple[float, float, float, int]] = {}
            for _ in range(ROUNDS):
                for t in targets:
                    result = load(t, workdir, model, batch, conns, SECONDS)
                    errors = result[3] + (best[t][3] if t in best else 0)
                    if t not in best or result[0] > best[t][0]:
                        best[t] = (*result[:3], errors)
                    else:
                        best[t] = (*best[t][:3], errors)
            for t, (rps, p50, p99, errors) in best.items():
                runs.append(Run(model, t.server, t.transport, batch, conns, rps, p50, p99, errors))
                print(f"  {model:8s} {t.server:18s} {t.transport:6s} batch {batch:4d} conns {conns:3d}: "
                      f"{rps:9.0f} req/s p50 {p50:7.2f} ms p99 {p99:7.2f} ms errors {errors}", flush=True)


def peer_command(peer: str, venv_python: Path, name: str, artifact: Path, port: int, grpc_port: int,
                 workdir: Path) -> tuple[list[str], Path | None]:
    if peer == "mlserver":
        home = workdir / f"mlserver-{name}"
        home.mkdir()
        shutil.copy(HERE / "peers" / "mlserver_onnx" / "onnx_runtime.py", home)
        # parallel_workers 0: inference in the server process; the default (1)
        # adds a process hop that only costs at these model sizes.
        (home / "settings.json").write_text(json.dumps({
            "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port(),
            "parallel_workers": 0, "debug": False}))
        (home / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "onnx_runtime.OnnxRuntime",
            "parameters": {"uri": str(artifact / "model.onnx")}}))
        return [str(venv_python.parent / "mlserver"), "start", str(home)], home
    return [str(venv_python), str(HERE / "peers" / "kserve_onnx.py"), name, str(artifact / "model.onnx"),
            str(port)], None


# -- limits -------------------------------------------------------------------------------

def in_process(path: Path, batch: int, seconds: float = 1.0) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(THREADS)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input": features(batch)}
    for _ in range(20):
        session.run(None, feed)
    best = 0.0
    for _ in range(3):  # the best of three: the least disturbed by other work
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            session.run(None, feed)
            n += 1
        best = max(best, n / (time.perf_counter() - t0))
    return best


def drift_cost_us_per_row(artifact: Path, batch: int, rows: int = 20000) -> float:
    from modelship_runtime.artifacts.metadata import Metadata
    from modelship_runtime.serving.drift import DriftCounters

    md = Metadata.model_validate_json((artifact / "metadata.json").read_text())
    counters = DriftCounters("bench", md)
    x = features(batch)
    outputs: dict[str, np.ndarray] = {"label": np.ones(batch, dtype=np.int64), "probabilities": np.full((batch, 2), 0.5, np.float32)}
    t0 = time.perf_counter()
    for _ in range(rows // batch):
        counters.count({"input": x}, outputs)
    list(counters.collect())  # flushes what is pending
    return (time.perf_counter() - t0) / rows * 1e6


def live_profile(pid: int, target: Target, workdir: Path, model: str, seconds: float = 4.0) -> str:
    """py-spy's view of the live server under batch-1 JSON load: the top functions by own time."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "py-spy is not installed (dev extra): no live profile"
    out = workdir / "py-spy.txt"
    script = lua_script(workdir, target.transport, 1)
    gen = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{round(seconds) + 2}s", "-s", str(script), target.url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        done = subprocess.run([spy, "record", "-p", str(pid), "-d", str(round(seconds)), "-r", "250", "-f", "raw",
                               "-o", str(out)], capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        gen.wait(timeout=seconds + 30)
    if done.returncode != 0 or not out.exists():
        return f"py-spy could not attach ({done.stderr.strip()[:200]}): no live profile"
    own: dict[str, int] = {}
    total = 0
    names = {"Runner.run (runners.py:118)": "the event loop in C: epoll, socket reads, uvloop (Runner.run)",
             "HttpProtocol._write (server.py:433)": "socket send of the response (HttpProtocol._write)"}
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or not count.isdigit() or frames[-1].startswith("_worker ("):
            continue  # the inference thread waiting for work (calls this small run inline) is idle
        total += int(count)
        leaf = re.sub(r" \((?:.*/)?([^/]+:\d+)\)$", r" (\1)", frames[-1])
        leaf = names.get(leaf, leaf)
        own[leaf] = own.get(leaf, 0) + int(count)
    lines = [f"py-spy, the live server's loop thread under wrk -c8 batch-1 JSON ({total} samples), "
             "top lines by own time:"]
    for leaf, n in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {n / total:5.1%}  {leaf[:110]}")
    return "\n".join(lines)


# -- the report ---------------------------------------------------------------------------

def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def report(runs: list[Run], limits: dict[tuple[str, int], float], drift: dict[str, float]) -> str:
    lines = []
    by = {(r.model, r.server, r.transport, r.batch, r.connections): r for r in runs}
    head = (f"{'model':8s} {'batch':>5s} {'conns':>5s} {'server':16s} {'proto':6s} {'req/s':>9s} {'rows/s':>10s} "
            f"{'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}  vs mlserver  vs kserve  vs floor")
    lines += [head, "-" * len(head)]
    for r in runs:
        extra = ""
        if r.server == "modelship-serve":
            ml = by.get((r.model, "mlserver", r.transport if r.transport != "binary" else "json", r.batch,
                         r.connections))
            ks = by.get((r.model, "kserve", "json", r.batch, r.connections))
            floor = "grpc-floor" if r.transport == "grpc" else "http-floor"
            fl = by.get(("logistic", floor, r.transport if r.transport == "grpc" else "json", r.batch, r.connections))
            extra = (f"  {ratio(r.rps, ml.rps) if ml else '-':>10s}  {ratio(r.rps, ks.rps) if ks else '-':>8s}"
                     f"  {f'{r.rps / fl.rps:.0%}' if fl and r.batch == 1 else '-':>8s}")
        lines.append(f"{r.model:8s} {r.batch:5d} {r.connections:5d} {r.server:16s} {r.transport:6s} {r.rps:9.0f} "
                     f"{r.rows:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:6d}{extra}")
    lines.append("")
    lines.append("In-process onnxruntime (no transport), calls/s and rows/s:")
    for (model, batch), cps in sorted(limits.items()):
        lines.append(f"  {model:8s} batch {batch:5d}: {cps:10.0f} calls/s {cps * batch:12.0f} rows/s")
    lines.append("")
    lines.append("Drift histograms (30 numeric features + prediction), counting cost in-process:")
    for k, v in drift.items():
        lines.append(f"  {k}: {v:.2f}")
    return "\n".join(lines)


def goals(runs: list[Run], limits: dict[tuple[str, int], float]) -> list[tuple[str, float, float, bool, str]]:
    """(goal, measured, bound, met, detail) for each of issue 21's goals."""
    out = []
    in_process_rows = next(r.rows for r in runs if r.server == "onnxruntime" and r.batch == 1024)
    big = [r for r in runs if r.model == "forest" and r.batch == 1024 and r.transport in ("binary", "grpc")]
    best = max(big, key=lambda r: r.rows)
    share = best.rows / in_process_rows
    out.append(("forest, batch 1024: binary REST or gRPC rows/s vs in-process onnxruntime (interleaved)", share, 0.8,
                share >= 0.8, f"{best.rows:,.0f} rows/s over {best.transport} vs {in_process_rows:,.0f} in-process"))
    ours = {(r.model, r.connections): r for r in runs if r.server == "modelship-serve" and r.transport == "grpc"
            and r.batch == 1}
    theirs = {(r.model, r.connections): r for r in runs if r.server == "mlserver" and r.transport == "grpc"
              and r.batch == 1}
    if theirs:
        worst = min(((ours[k].rps / theirs[k].rps, k) for k in theirs if k in ours), key=lambda x: x[0])
        detail = ", ".join(f"{m} c{c}: {ours[(m, c)].rps:,.0f} vs {theirs[(m, c)].rps:,.0f}" for m, c in sorted(theirs))
        out.append(("gRPC, batch 1: req/s vs MLServer's gRPC (worst model x connections)", worst[0], 5.0,
                    worst[0] >= 5.0, detail))
    json_runs = {r.connections: r for r in runs if r.server == "modelship-serve" and r.model == "logistic"
                 and r.transport == "json" and r.batch == 1}
    floor = {r.connections: r for r in runs if r.server == "http-floor" and r.batch == 1}
    worst_share = min(json_runs[c].rps / floor[c].rps for c in floor)
    detail = ", ".join(f"c{c}: {json_runs[c].rps:,.0f} vs {floor[c].rps:,.0f}" for c in sorted(floor))
    out.append(("JSON, batch 1: req/s vs the HTTP floor (logistic, worst of 8 and 64 conns)", worst_share, 0.5,
                worst_share >= 0.5, detail))
    return out


@pytest.mark.slow
def test_serving_benchmark(tmp_path: Path) -> None:
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        assert shutil.which(tool), f"{tool} is not installed (make apt-tools installs Debian's {package})"
    load_before = os.getloadavg()
    models = {
        "logistic": serve_models.build_logistic(tmp_path / "logistic"),
        "forest": serve_models.build_forest(tmp_path / "forest", trees=100),
    }
    bare = tmp_path / "bare" / "logistic.onnx"
    bare.parent.mkdir()
    shutil.copy(models["logistic"] / "model.onnx", bare)
    runs: list[Run] = []
    python = sys.executable
    env = {"MODELSHIP_DRAIN_SECONDS": "0"}
    peers = {peer: python_ for peer in PEERS if (python_ := ensure_venv(peer)) is not None}
    profile = ""
    for peer in ("mlserver", "kserve"):  # the figures are ratios against both: no peer, no figure
        assert peer in peers, f"{peer} could not be set up (see above) or BENCH_PEERS left it out"

    with ExitStack() as stack:
        floor_port, floor_grpc = free_port(), free_port()
        stack.enter_context(process([python, str(HERE / "floor_server.py"), str(floor_port), str(floor_grpc)],
                                    f"http://127.0.0.1:{floor_port}/"))
        floors = [Target("http-floor", "json", f"http://127.0.0.1:{floor_port}/v2/models/logistic/infer"),
                  Target("grpc-floor", "grpc", f"http://127.0.0.1:{floor_grpc}{INFER}")]
        for name, artifact in models.items():
            with ExitStack() as servers_up:
                port, grpc_port = free_port(), free_port()
                ours = servers_up.enter_context(process(
                    [python, "-m", "modelship_runtime.serving.cli", "--model-uri", artifact.as_uri(),
                     "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)],
                    f"http://127.0.0.1:{port}/v2/health/ready", env=env, log=tmp_path / f"serve-{name}.log"))
                rest = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                json_targets = [Target("modelship-serve", "json", rest)]
                grpc_targets = [Target("modelship-serve", "grpc", f"http://127.0.0.1:{grpc_port}{INFER}")]
                binary = Target("modelship-serve", "binary", rest)
                for peer, venv_python in peers.items():
                    port, peer_grpc = free_port(), free_port()
                    cmd, cwd = peer_command(peer, venv_python, name, artifact, port, peer_grpc, tmp_path)
                    servers_up.enter_context(process(cmd, f"http://127.0.0.1:{port}/v2/models/{name}/ready", cwd=cwd,
                                                     env={"BENCH_ORT_THREADS": THREADS},
                                                     log=tmp_path / f"{peer}-{name}.log"))
                    json_targets.append(Target(peer, "json", f"http://127.0.0.1:{port}/v2/models/{name}/infer"))
                    if peer == "mlserver":
                        grpc_targets.append(Target(peer, "grpc", f"http://127.0.0.1:{peer_grpc}{INFER}"))
                if name == "logistic":
                    # The floors and the same model without drift histograms ride along.
                    port = free_port()
                    servers_up.enter_context(process(
                        [python, "-m", "modelship_runtime.serving.cli", "--model-uri", str(bare),
                         "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "-1"],
                        f"http://127.0.0.1:{port}/v2/health/ready", env=env))
                    json_targets += [Target("modelship(nodrift)", "json",
                                            f"http://127.0.0.1:{port}/v2/models/logistic/infer"), floors[0]]
                    grpc_targets.append(floors[1])
                print(f"\n{name}: {', '.join(f'{t.server} ({t.transport})' for t in json_targets + grpc_targets)}",
                      flush=True)
                measure_interleaved(name, [*json_targets, binary], tmp_path, runs)
                measure_interleaved(name, grpc_targets, tmp_path, runs)
                if name == "forest":
                    limit = Target("onnxruntime", "in-process", str(artifact / "model.onnx"))
                    measure_interleaved(name, [json_targets[0], binary, grpc_targets[0], limit], tmp_path, runs,
                                        batches=(1024,), connections=(8,))
                if name == "logistic":
                    profile = live_profile(ours.pid, json_targets[0], tmp_path, name)
                metrics = urllib.request.urlopen(rest.split("/v2/")[0] + "/metrics", timeout=10).read().decode()
                failed = re.findall(r'modelship_requests_total\{code="(\d+)",endpoint="infer",model="[^"]+",'
                                    r'protocol="grpc"\} ([\d.e+]+)', metrics)
                assert all(code == "200" for code, _ in failed), f"gRPC calls failed: {failed}"

    # Its own process: it loads modelship's protobuf messages, which share the "inference"
    # package with Triton's that this process imported (protobuf's default pool holds one).
    stages = subprocess.run([python, str(HERE / "profile_json.py"), str(models["logistic"])], capture_output=True,
                            text=True, timeout=600, check=True).stdout.strip()
    limits = {}
    for name, artifact in models.items():
        for batch in (1, 32, 1024):
            limits[(name, batch)] = in_process(artifact / "model.onnx", batch)
    drift = {
        "us per row at batch 1": drift_cost_us_per_row(models["logistic"], 1),
        "us per row at batch 32": drift_cost_us_per_row(models["logistic"], 32),
    }
    for batch in (1, 32):
        with_drift = next(r for r in runs if r.server == "modelship-serve" and r.model == "logistic"
                          and r.transport == "json" and r.batch == batch and r.connections == 8)
        without = next((r for r in runs if r.server == "modelship(nodrift)" and r.batch == batch
                        and r.connections == 8), None)
        if without:
            drift[f"live req/s with drift / without (batch {batch}, 8 conns)"] = with_drift.rps / without.rps
    table = report(runs, limits, drift)
    results = goals(runs, limits)
    table += "\n\nGoals (issue 21):"
    for goal, measured, bound, met, detail in results:
        shown = f"{measured:.0%}" if bound < 1 else f"{measured:.1f}x"
        want = f"{bound:.0%}" if bound < 1 else f"{bound:.0f}x"
        table += f"\n  {'MET   ' if met else 'MISSED'} {goal}: {shown} (goal {want}); {detail}"
    table += "\n\n" + stages + "\n\n" + profile
    table += (f"\n\nLoad average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs; best of {ROUNDS} interleaved rounds of {SECONDS:.0f} s, wrk -t1 / h2load -t1 -m1")
    print("\n" + table, flush=True)
    out = CACHE / "bench-serving.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"\nWrote {out}")
    assert all(r.errors == 0 for r in runs if r.server.startswith("modelship")), "modelship-serve answered errors"
    missed = [goal for goal, _, _, met, _ in results if not met]
    if missed and GOALS_ASSERTED:
        pytest.fail(f"missed goals: {missed} (BENCH_GOALS=assert)")
    # README's bounds (the goals above are issue 21's, higher; these hold on a busy machine too).
    by = {(r.model, r.server, r.batch, r.connections): r for r in runs if r.transport == "json"}
    for model in models:
        for batch in BATCHES:
            for conns in CONNECTIONS:
                mine = by[(model, "modelship-serve", batch, conns)]
                for peer in ("mlserver", "kserve"):
                    theirs = by[(model, peer, batch, conns)]
                    assert mine.rps >= MIN_VS_PEERS[batch] * theirs.rps, (
                        f"{model} batch {batch} conns {conns}: {mine.rps:.0f} req/s, {peer} {theirs.rps:.0f}")
                if batch == 1:
                    ml = by[(model, "mlserver", batch, conns)]
                    assert mine.p99_ms <= MAX_P99_VS_MLSERVER_BATCH1 * ml.p99_ms, (
                        f"{model} conns {conns}: p99 {mine.p99_ms:.2f} ms, MLServer {ml.p99_ms:.2f} ms")
    for conns in CONNECTIONS:
        share = by[("logistic", "modelship-serve", 1, conns)].rps / by[("logistic", "http-floor", 1, conns)].rps
        assert share >= MIN_SHARE_OF_HTTP_FLOOR, f"{share:.0%} of the HTTP floor at {conns} conns"
    forest_1024 = max((r for r in runs if r.server == "modelship-serve" and r.model == "forest" and r.batch == 1024),
                      key=lambda r: r.rows)
    assert forest_1024.rows >= MIN_SHARE_OF_IN_PROCESS_1024 * limits[("forest", 1024)] * 1024
    assert drift["us per row at batch 1"] <= MAX_DRIFT_US_PER_ROW
    for batch in (1, 32):
        ratio = drift.get(f"live req/s with drift / without (batch {batch}, 8 conns)")
        assert ratio is not None and ratio >= MIN_LIVE_DRIFT_RATIO, f"drift histograms live, batch {batch}: {ratio}"
