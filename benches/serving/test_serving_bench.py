"""Serving benchmark: modelship-serve against MLServer and KServe's Python server.

Same two models (a scaler + logistic-regression pipeline and a 100-tree random
forest, 30 features, ONNX), same Open Inference Protocol v2 request bodies,
same load generator (wrk, one thread) on 127.0.0.1, batch 1 and 32 at 8 and
64 connections. Two limits frame the figures: onnxruntime called in-process
(no HTTP at all) and the HTTP floor (modelship-serve's own HTTP stack answering
a fixed OIP response without parsing or inference). Also measured: the cost
of the drift histograms (in-process per row, and live against the same model
served as a bare .onnx without metadata), and the forest at batch 1024.

Peers live in their own virtual environments under
${XDG_CACHE_HOME:-~/.cache}/modelship/bench-venvs (created on first run with
pip). Run: ``make bench-serving`` (or ``make bench``). Knobs: BENCH_SECONDS
(per run, default 4), BENCH_PEERS (default "mlserver,kserve").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
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
import serve_models  # noqa: E402  (the same artifact builders the tests use)

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelship"
VENVS = CACHE / "bench-venvs"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PEERS = [p for p in os.environ.get("BENCH_PEERS", "mlserver,kserve").split(",") if p]
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


@dataclass
class Run:
    model: str
    server: str
    batch: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rows(self) -> float:
        return self.rps * self.batch


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


def body(batch: int, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).normal(size=(batch, serve_models.N_FEATURES)).astype(np.float32)
    return json.dumps({"inputs": [{"name": "input", "shape": [batch, serve_models.N_FEATURES],
                                   "datatype": "FP32", "data": [float(v) for v in x.ravel()]}]}).encode()


def lua_script(workdir: Path, batch: int) -> Path:
    path = workdir / f"post-{batch}.lua"
    if not path.exists():
        payload = body(batch).decode()
        path.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(payload)}\n"
        )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, script: Path, connections: int, seconds: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", "-s", str(script), url],
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


def check_answers(url: str) -> None:
    req = urllib.request.Request(url, data=body(2), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["outputs"], doc


def measure_interleaved(model: str, servers: dict[str, str], workdir: Path, runs: list[Run],
                        batches: tuple[int, ...] = BATCHES, connections: tuple[int, ...] = CONNECTIONS) -> None:
    """Each configuration runs on every server back to back, ROUNDS times; the best round counts.

    Other work on the machine comes and goes: interleaving gives every server
    the same conditions, and the best of a few rounds is the least disturbed.
    """
    for url in servers.values():
        check_answers(url)
    for batch in batches:
        script = lua_script(workdir, batch)
        for url in servers.values():
            wrk(url, script, connections[0], 1.0)  # warm-up
        for conns in connections:
            best: dict[str, tuple[float, float, float, int]] = {}
            for _ in range(ROUNDS):
                for server, url in servers.items():
                    result = wrk(url, script, conns, SECONDS)
                    errors = result[3] + (best[server][3] if server in best else 0)
                    if server not in best or result[0] > best[server][0]:
                        best[server] = (*result[:3], errors)
                    else:
                        best[server] = (*best[server][:3], errors)
            for server, (rps, p50, p99, errors) in best.items():
                runs.append(Run(model, server, batch, conns, rps, p50, p99, errors))
                print(f"  {model:8s} {server:18s} batch {batch:4d} conns {conns:3d}: {rps:9.0f} req/s "
                      f"p50 {p50:7.2f} ms p99 {p99:7.2f} ms errors {errors}", flush=True)


def peer_command(peer: str, venv_python: Path, name: str, artifact: Path, port: int,
                 workdir: Path) -> tuple[list[str], Path | None]:
    if peer == "mlserver":
        home = workdir / f"mlserver-{name}"
        home.mkdir()
        shutil.copy(HERE / "peers" / "mlserver_onnx" / "onnx_runtime.py", home)
        # parallel_workers 0: inference in the server process; the default (1)
        # adds a process hop that only costs at these model sizes.
        (home / "settings.json").write_text(json.dumps({
            "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
            "parallel_workers": 0, "debug": False}))
        (home / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "onnx_runtime.OnnxRuntime",
            "parameters": {"uri": str(artifact / "model.onnx")}}))
        return [str(venv_python.parent / "mlserver"), "start", str(home)], home
    return [str(venv_python), str(HERE / "peers" / "kserve_onnx.py"), name, str(artifact / "model.onnx"),
            str(port)], None


def in_process(path: Path, batch: int, seconds: float = 1.0) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(THREADS)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(batch, serve_models.N_FEATURES)).astype(np.float32)
    feed = {"input": x}
    for _ in range(20):
        session.run(None, feed)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.run(None, feed)
        n += 1
    return n / (time.perf_counter() - t0)


def drift_cost_us_per_row(artifact: Path, batch: int, rows: int = 20000) -> float:
    from modelship_runtime.artifacts.metadata import Metadata
    from modelship_runtime.serving.drift import DriftCounters

    md = Metadata.model_validate_json((artifact / "metadata.json").read_text())
    counters = DriftCounters("bench", md)
    x = np.random.default_rng(0).normal(size=(batch, serve_models.N_FEATURES)).astype(np.float32)
    outputs = {"label": np.ones(batch, dtype=np.int64), "probabilities": np.full((batch, 2), 0.5, np.float32)}
    t0 = time.perf_counter()
    for _ in range(rows // batch):
        counters.count({"input": x}, outputs)
    list(counters.collect())  # flushes what is pending
    return (time.perf_counter() - t0) / rows * 1e6


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def report(runs: list[Run], limits: dict[tuple[str, int], float], drift: dict[str, float]) -> str:
    lines = []
    by = {(r.model, r.server, r.batch, r.connections): r for r in runs}
    head = (f"{'model':8s} {'batch':>5s} {'conns':>5s} {'server':16s} {'req/s':>9s} {'rows/s':>10s} "
            f"{'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}  vs mlserver  vs kserve  vs floor")
    lines += [head, "-" * len(head)]
    for r in runs:
        extra = ""
        if r.server == "modelship-serve":
            ml = by.get((r.model, "mlserver", r.batch, r.connections))
            ks = by.get((r.model, "kserve", r.batch, r.connections))
            fl = by.get((r.model, "http-floor", r.batch, r.connections))
            extra = (f"  {ratio(r.rps, ml.rps) if ml else '-':>10s}  {ratio(r.rps, ks.rps) if ks else '-':>8s}"
                     f"  {f'{r.rps / fl.rps:.0%}' if fl else '-':>8s}")
        lines.append(f"{r.model:8s} {r.batch:5d} {r.connections:5d} {r.server:16s} {r.rps:9.0f} {r.rows:10.0f} "
                     f"{r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:6d}{extra}")
    lines.append("")
    lines.append("In-process onnxruntime (no HTTP), calls/s and rows/s:")
    for (model, batch), cps in sorted(limits.items()):
        lines.append(f"  {model:8s} batch {batch:5d}: {cps:10.0f} calls/s {cps * batch:12.0f} rows/s")
    lines.append("")
    lines.append("Drift histograms (30 numeric features + prediction), counting cost in-process:")
    for k, v in drift.items():
        lines.append(f"  {k}: {v:.2f}")
    return "\n".join(lines)


@pytest.mark.slow
def test_serving_benchmark(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is not installed (make apt-tools)"
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
    for peer in ("mlserver", "kserve"):  # the figures are ratios against both: no peer, no figure
        assert peer in peers, f"{peer} could not be set up (see above) or BENCH_PEERS left it out"

    with ExitStack() as stack:
        floor_port = free_port()
        stack.enter_context(process([python, str(HERE / "floor_server.py"), str(floor_port)],
                                    f"http://127.0.0.1:{floor_port}/"))
        floor_url = f"http://127.0.0.1:{floor_port}/v2/models/logistic/infer"
        for name, artifact in models.items():
            with ExitStack() as servers_up:
                servers = {}
                port = free_port()
                servers_up.enter_context(process(
                    [python, "-m", "modelship_runtime.serving.cli", "--model-uri", artifact.as_uri(),
                     "--host", "127.0.0.1", "--port", str(port)],
                    f"http://127.0.0.1:{port}/v2/health/ready", env=env, log=tmp_path / f"serve-{name}.log"))
                servers["modelship-serve"] = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                for peer, venv_python in peers.items():
                    port = free_port()
                    cmd, cwd = peer_command(peer, venv_python, name, artifact, port, tmp_path)
                    servers_up.enter_context(process(cmd, f"http://127.0.0.1:{port}/v2/models/{name}/ready", cwd=cwd,
                                                     env={"BENCH_ORT_THREADS": THREADS},
                                                     log=tmp_path / f"{peer}-{name}.log"))
                    servers[peer] = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                print(f"\n{name}: {', '.join(servers)}", flush=True)
                if name == "logistic":
                    # The HTTP floor and the same model without drift histograms ride along.
                    port = free_port()
                    servers_up.enter_context(process(
                        [python, "-m", "modelship_runtime.serving.cli", "--model-uri", str(bare),
                         "--host", "127.0.0.1", "--port", str(port)],
                        f"http://127.0.0.1:{port}/v2/health/ready", env=env))
                    servers["modelship(nodrift)"] = f"http://127.0.0.1:{port}/v2/models/logistic/infer"
                    servers["http-floor"] = floor_url
                measure_interleaved(name, servers, tmp_path, runs)
                if name == "forest":
                    measure_interleaved(name, {"modelship-serve": servers["modelship-serve"]}, tmp_path, runs,
                                        batches=(1024,), connections=(8,))

    limits = {}
    for name, artifact in models.items():
        for batch in (1, 32, 1024):
            limits[(name, batch)] = in_process(artifact / "model.onnx", batch)
    drift = {
        "us per row at batch 1": drift_cost_us_per_row(models["logistic"], 1),
        "us per row at batch 32": drift_cost_us_per_row(models["logistic"], 32),
    }
    with_drift = next(r for r in runs if r.server == "modelship-serve" and r.model == "logistic"
                      and r.batch == 1 and r.connections == 8)
    without = next((r for r in runs if r.server == "modelship(nodrift)" and r.batch == 1 and r.connections == 8),
                   None)
    if without:
        drift["live req/s with drift / without (batch 1, 8 conns)"] = with_drift.rps / without.rps
    without32 = next((r for r in runs if r.server == "modelship(nodrift)" and r.batch == 32 and r.connections == 8), None)
    with32 = next(r for r in runs if r.server == "modelship-serve" and r.model == "logistic"
                  and r.batch == 32 and r.connections == 8)
    if without32:
        drift["live req/s with drift / without (batch 32, 8 conns)"] = with32.rps / without32.rps
    table = report(runs, limits, drift)
    forest_1024 = next(r for r in runs if r.model == "forest" and r.batch == 1024)
    table += (f"\n\nForest at batch 1024: {forest_1024.rows:.0f} rows/s served vs "
              f"{limits[('forest', 1024)] * 1024:.0f} rows/s in-process "
              f"({forest_1024.rows / (limits[('forest', 1024)] * 1024):.0%})")
    table += (f"\nLoad average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs; best of {ROUNDS} interleaved rounds of {SECONDS:.0f} s, wrk -t1")
    print("\n" + table, flush=True)
    out = CACHE / "bench-serving.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"\nWrote {out}")
    assert all(r.errors == 0 for r in runs if r.server.startswith("modelship")), "modelship-serve answered errors"
    by = {(r.model, r.server, r.batch, r.connections): r for r in runs}
    for model in models:
        for batch in BATCHES:
            for conns in CONNECTIONS:
                ours = by[(model, "modelship-serve", batch, conns)]
                for peer in ("mlserver", "kserve"):
                    theirs = by[(model, peer, batch, conns)]
                    assert ours.rps >= MIN_VS_PEERS[batch] * theirs.rps, (
                        f"{model} batch {batch} conns {conns}: {ours.rps:.0f} req/s, {peer} {theirs.rps:.0f}")
                if batch == 1:
                    ml = by[(model, "mlserver", batch, conns)]
                    assert ours.p99_ms <= MAX_P99_VS_MLSERVER_BATCH1 * ml.p99_ms, (
                        f"{model} conns {conns}: p99 {ours.p99_ms:.2f} ms, MLServer {ml.p99_ms:.2f} ms")
    for conns in CONNECTIONS:
        share = by[("logistic", "modelship-serve", 1, conns)].rps / by[("logistic", "http-floor", 1, conns)].rps
        assert share >= MIN_SHARE_OF_HTTP_FLOOR, f"{share:.0%} of the HTTP floor at {conns} conns"
    assert forest_1024.rows >= MIN_SHARE_OF_IN_PROCESS_1024 * limits[("forest", 1024)] * 1024
    assert drift["us per row at batch 1"] <= MAX_DRIFT_US_PER_ROW
    assert without is not None and without32 is not None
    assert with_drift.rps / without.rps >= MIN_LIVE_DRIFT_RATIO
    assert with32.rps / without32.rps >= MIN_LIVE_DRIFT_RATIO
