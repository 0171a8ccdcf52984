"""The prediction log's cost: req/s and p99 with logging on against off, and the segment writer against pyarrow.

Two modelship-serve processes with the same logistic artifact, one logging
every request (file:// store, 1 s flushes), one not; wrk drives both in
interleaved rounds (the best round counts) at batch 1 and 32. The writer is
timed in-process on a 30-feature segment of 50,000 rows, against pyarrow
writing the same table. Asserted bounds (README, "Ground truth"): logging on
keeps at least LOG_RPS_FLOOR of the req/s, a p99 within LOG_P99_LIMIT
of logging off (+2 ms), and server CPU per request within CPU_LIMIT (the
figure least disturbed by other load on the machine) at every
configuration; no logged row is dropped at these rates; our segment encoding
costs under WRITER_LIMIT µs per row.

Run: ``.venv/bin/python -m pytest benches/serving/test_predlog_bench.py -q -s``.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_serving_bench import SECONDS, free_port, lua_script, process, wait_http, wrk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "runtime" / "serving"))
import serve_models  # noqa: E402

from modelship_runtime.groundtruth.parquet import Column, write_table  # noqa: E402

LOG_RPS_FLOOR = 0.45
LOG_P99_LIMIT = 5.0
CPU_LIMIT = {1: 1.35, 32: 1.8}  # server CPU per request, logging on / off
WRITER_LIMIT_US = 5.0
ROUNDS = 3
CONFIGS = ((1, 8), (1, 64), (32, 8))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (what it cost, whatever else the machine does)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def segment_columns(rows: int) -> list[Column]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, serve_models.N_FEATURES))
    return [
        Column("request_id", "string", [f"3f9a1c2e7b4d-{i:x}" for i in range(rows)]),
        Column("row", "int64", np.zeros(rows, dtype=np.int64)),
        Column("time", "timestamp", 1_764_000_000_000_000 + np.arange(rows, dtype=np.int64)),
        Column("revision", "string", ["loans-5f2c0a1b9e"] * rows),
        Column("model_version", "string", ["5f2c0a1b9e11"] * rows),
        *[Column(f"f{j}", "double", x[:, j]) for j in range(x.shape[1])],
        Column("prediction", "int64", (x[:, 0] > 0).astype(np.int64)),
        Column("proba_0", "double", 1 / (1 + np.exp(x[:, 0]))),
        Column("proba_1", "double", 1 / (1 + np.exp(-x[:, 0]))),
    ]


def writer_costs(rows: int = 50_000) -> dict[str, float]:
    """µs per row: our encoder (gzip and none) and pyarrow's writer on the same columns."""
    columns = segment_columns(rows)
    out = {}
    for codec in ("gzip", "none"):
        t0 = time.perf_counter()
        data = write_table(columns, codec=codec)
        out[f"ours_{codec}_us"] = (time.perf_counter() - t0) / rows * 1e6
        out[f"ours_{codec}_bytes_per_row"] = len(data) / rows
    table = pa.table({c.name: (pa.array(c.values, type=pa.timestamp("us", tz="UTC")) if c.kind == "timestamp"
                               else pa.array(c.values)) for c in columns})
    for codec in ("gzip", "snappy"):
        sink = io.BytesIO()
        t0 = time.perf_counter()
        pq.write_table(table, sink, compression=codec)
        out[f"pyarrow_{codec}_us"] = (time.perf_counter() - t0) / rows * 1e6
        out[f"pyarrow_{codec}_bytes_per_row"] = len(sink.getvalue()) / rows
    return out


def test_prediction_log_cost(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is not installed (make apt-tools installs Debian's wrk)"
    artifact = serve_models.build_logistic(tmp_path / "logistic")
    servers: dict[str, str] = {}
    store = tmp_path / "store"
    pair = process_pair(artifact, store, tmp_path)
    with pair as urls:
        servers.update(urls)
        results: dict[tuple[str, int, int], tuple[float, float, float, int]] = {}
        cpu: dict[tuple[str, int, int], list[float]] = {}
        for batch, conns in CONFIGS:
            script = lua_script(tmp_path, "json", batch)
            for url in servers.values():
                wrk(url + "/v2/models/logistic/infer", script, conns, 1.0)
            for _ in range(ROUNDS):
                for name, url in servers.items():
                    before = cpu_seconds(pair.pids[name])
                    r = wrk(url + "/v2/models/logistic/infer", script, conns, SECONDS)
                    key = (name, batch, conns)
                    # CPU per request: the writer's flushes land in the next run too, so it evens out.
                    cpu.setdefault(key, []).append((cpu_seconds(pair.pids[name]) - before) / (r[0] * SECONDS) * 1e6)
                    if key not in results or r[0] > results[key][0]:
                        results[key] = r
        time.sleep(1.5)  # one more flush
        logged = _metric(servers["on"], 'modelship_prediction_log_rows_total{model="logistic",outcome="logged"}')
        dropped = _metric(servers["on"], 'modelship_prediction_log_rows_total{model="logistic",outcome="dropped"}')
        written = _metric(servers["on"], 'modelship_prediction_log_bytes_total')
    segments = sorted(store.rglob("*.parquet"))
    rows_on_disk = sum(pq.read_metadata(p).num_rows for p in segments)
    costs = writer_costs()
    print("\nPrediction log: logging on vs off (modelship-serve, logistic, 30 features, wrk -t1)")
    print("| batch | conns | off req/s (p99 ms) | on req/s (p99 ms) | req/s ratio | p99 ratio | "
          "server CPU µs/request off → on |")
    print("|---|---|---|---|---|---|---|")
    failures = []
    for batch, conns in CONFIGS:
        off, on = results[("off", batch, conns)], results[("on", batch, conns)]
        rps_ratio, p99_ratio = on[0] / off[0], on[2] / off[2]
        cpu_off, cpu_on = min(cpu[("off", batch, conns)]), min(cpu[("on", batch, conns)])
        print(f"| {batch} | {conns} | {off[0]:,.0f} ({off[2]:.2f}) | {on[0]:,.0f} ({on[2]:.2f}) | "
              f"{rps_ratio:.2f} | {p99_ratio:.2f} | {cpu_off:.0f} → {cpu_on:.0f} ({cpu_on / cpu_off:.2f}x) |")
        if rps_ratio < LOG_RPS_FLOOR:
            failures.append(f"batch {batch} conns {conns}: req/s ratio {rps_ratio:.2f} < {LOG_RPS_FLOOR}")
        if on[2] > LOG_P99_LIMIT * off[2] + 2.0:
            failures.append(f"batch {batch} conns {conns}: p99 {on[2]:.2f} ms > {LOG_P99_LIMIT} x {off[2]:.2f} + 2")
        if cpu_on > CPU_LIMIT[batch] * cpu_off:
            failures.append(f"batch {batch} conns {conns}: CPU per request {cpu_on / cpu_off:.2f}x > {CPU_LIMIT[batch]}")
        assert on[3] == 0 and off[3] == 0
    for (name, batch, conns), values in sorted(cpu.items()):
        r = results[(name, batch, conns)]
        print(f"  {name:8s} batch {batch:2d} conns {conns:2d}: {r[0]:8,.0f} req/s p99 {r[2]:7.2f} ms, "
              f"CPU µs/request {min(values):.0f} (rounds {', '.join(f'{v:.0f}' for v in values)})")
    print(f"logged rows {logged:,.0f}, dropped {dropped:,.0f}, on disk {rows_on_disk:,} in {len(segments)} segments, "
          f"{written / max(rows_on_disk, 1):.0f} bytes/row written")
    print("Segment writer, 50,000 rows x 38 columns (µs/row, bytes/row): " + ", ".join(
        f"{k} {v:.2f}" for k, v in costs.items()))
    print(f"time ours/pyarrow: gzip {costs['ours_gzip_us'] / costs['pyarrow_gzip_us']:.2f}x, "
          f"ours uncompressed / pyarrow snappy {costs['ours_none_us'] / costs['pyarrow_snappy_us']:.2f}x")
    assert dropped == 0 and rows_on_disk == logged
    assert costs["ours_none_us"] < WRITER_LIMIT_US, costs
    assert not failures, failures


class process_pair:
    """The two servers: logging off and logging on (to ``store``)."""

    def __init__(self, artifact: Path, store: Path, workdir: Path) -> None:
        self.artifact, self.store, self.workdir = artifact, store, workdir

    def __enter__(self) -> dict[str, str]:
        from contextlib import ExitStack

        self.exit = ExitStack()
        self.pids: dict[str, int] = {}
        urls = {}
        on = {"MODELSHIP_PREDICTION_LOG_URI": self.store.as_uri() + "/", "MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS": "1",
              "MODELSHIP_REVISION": "logistic-bench"}
        variants = [("off", {}), ("on", on)]
        if os.environ.get("BENCH_PREDLOG_VARIANTS"):  # e.g. "noslice:MODELSHIP_PREDICTION_LOG_SLICE_ITEMS=0"
            for spec in os.environ["BENCH_PREDLOG_VARIANTS"].split(";"):
                name, _, assignment = spec.partition(":")
                key, _, value = assignment.partition("=")
                variants.append((name, {**on, key: value}))
        for name, env in variants:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "modelship_runtime.serving.cli", "--model-uri", self.artifact.as_uri(),
                   "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "-1", "--threads", "1"]
            proc = self.exit.enter_context(process(cmd, url + "/v2/health/ready", env={
                "MODELSHIP_DRAIN_SECONDS": "0.1", **env}, log=self.workdir / f"{name}.log"))
            self.pids[name] = proc.pid
            wait_http(url + "/v2/health/ready")
            urls[name] = url
        return urls

    def __exit__(self, *exc: object) -> None:
        self.exit.close()
