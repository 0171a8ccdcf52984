"""What the quality Job costs: the join of a day of logged predictions with its labels, in time and memory.

A file:// store gets ROWS logged predictions of the loan model (7 features,
two revisions, 50,000-row segments written by the server's own writer, as
one hour-partition each) and labels for LABELLED of them (Parquet files as
a label pipeline would drop them, plus a CSV). ``modelship-quality`` runs as
its own process, as in its pod, and reports rows/s and its peak RSS. Limits
checked in the same run: peak RSS under the Job's default memory limit
(1 GiB) with room to spare (MEMORY_SHARE; about 200 MiB of it is
scikit-learn, pandas and pyarrow imported), and the measurement fast enough
to keep up with a busy model (ROWS_PER_SECOND_FLOOR).

Run: ``.venv/bin/python -m pytest benches/groundtruth -q -s``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelship.builders.quality import JOB_ENV
from modelship_runtime.groundtruth import layout
from modelship_runtime.groundtruth.parquet import Column, write_table

ROWS = int(os.environ.get("BENCH_QUALITY_ROWS", "1000000"))
LABELLED = ROWS * 3 // 10
SEGMENT = 50_000
JOB_MEMORY_MIB = 1024
MEMORY_SHARE = 0.7
ROWS_PER_SECOND_FLOOR = 100_000


def make_store(root: Path, start: datetime) -> list[str]:
    rng = np.random.default_rng(0)
    ids: list[str] = []
    for k, first in enumerate(range(0, ROWS, SEGMENT)):
        n = min(SEGMENT, ROWS - first)
        seg_ids = [f"5f2c0a1b9e11-{first + i:x}" for i in range(n)]
        ids += seg_ids
        t0 = start + timedelta(minutes=k)
        times = int(t0.timestamp() * 1e6) + np.arange(n, dtype=np.int64) * 1000
        p = rng.uniform(size=n)
        revision = "loans-aaa" if k % 2 == 0 else "loans-bbb"
        columns = [
            Column(layout.REQUEST_ID, "string", seg_ids), Column(layout.ROW, "int64", np.zeros(n, dtype=np.int64)),
            Column(layout.TIME, "timestamp", times), Column(layout.REVISION, "string", [revision] * n),
            Column(layout.MODEL_VERSION, "string", [revision[-3:]] * n),
            *[Column(f, "double", rng.normal(size=n)) for f in ("income", "debt_ratio", "age", "credit_lines",
                                                                 "loan_amount")],
            Column("region", "string", list(rng.choice(["north", "south", "east", "west"], n))),
            Column("employment", "string", list(rng.choice(["salaried", "contractor"], n))),
            Column(layout.PREDICTION, "int64", (p > 0.5).astype(np.int64)),
            Column("proba_0", "double", 1 - p), Column("proba_1", "double", p),
        ]
        path = root / layout.PREDICTIONS_DIR / layout.partition(t0) / f"{revision}.pod.bench.{k:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(write_table(columns, codec="none"))
    return ids


def test_quality_job_join_cost(tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    store = tmp_path / "store"
    ids = make_store(store, start)
    labels = tmp_path / "labels"
    labels.mkdir()
    rng = np.random.default_rng(1)
    chosen = rng.choice(len(ids), size=LABELLED, replace=False)
    frame = pd.DataFrame({"request_id": np.asarray(ids, dtype=object)[chosen], "label": rng.integers(0, 2, LABELLED)})
    half = LABELLED // 2
    pq.write_table(pa.Table.from_pandas(frame.iloc[:half], preserve_index=False), labels / "part-1.parquet")
    frame.iloc[half:].to_csv(labels / "part-2.csv", index=False)
    request = {"groundtruthUri": store.as_uri() + "/", "labels": [{"uri": labels.as_uri() + "/"}],
               "start": start.isoformat(), "end": (start + timedelta(hours=3)).isoformat(), "revisions": {}}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    env = {**os.environ, **JOB_ENV}  # as the Job's pod runs it (builders/quality.py)
    out = subprocess.run([sys.executable, "-m", "modelship_runtime.groundtruth.cli", "--request", str(path),
                          "--termination-log", str(tmp_path / "t")], capture_output=True, text=True, timeout=900,
                         env=env)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, (out.stderr[-2000:], summary)
    size = sum(p.stat().st_size for p in store.rglob("*.parquet"))
    rps, rss = summary["rowsPerSecond"], summary["peakRssMiB"]
    print(f"\nQuality Job: {summary['predictions']:,} logged rows ({size / 2**20:.0f} MiB in {summary['files']} files) "
          f"joined with {summary['labels']:,} labels -> {summary['labelled']:,} labelled rows, 2 revisions: "
          f"{summary['seconds']:.1f} s = {rps:,.0f} rows/s (floor {ROWS_PER_SECOND_FLOOR:,}: "
          f"{rps / ROWS_PER_SECOND_FLOOR:.1f}x); peak RSS {rss} MiB = {rss / JOB_MEMORY_MIB:.0%} of the Job's "
          f"{JOB_MEMORY_MIB} MiB limit (bound {MEMORY_SHARE:.0%})")
    assert summary["predictions"] == ROWS and summary["labelled"] == LABELLED
    assert rps >= ROWS_PER_SECOND_FLOOR
    assert rss <= MEMORY_SHARE * JOB_MEMORY_MIB
