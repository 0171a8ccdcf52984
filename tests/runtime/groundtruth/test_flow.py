"""The whole ground-truth path on the host, with the real processes: a serving process logs, labels come
back late (a file and the feedback endpoint), modelship-quality measures, the trainer retrains on them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from groundtruth_helpers import Loans, loan_spec

from modelship.demo import data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: Any) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_log_labels_quality_and_retrain_with_the_real_processes(tmp_path: Path, loans: Loans) -> None:
    store = tmp_path / "store" / "ns" / "_groundtruth" / "loans"
    port = free_port()
    env = {**os.environ, "MODELSHIP_PREDICTION_LOG_URI": store.as_uri() + "/", "MODELSHIP_REVISION": "loans-aaa",
           "MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS": "600", "MODELSHIP_DRAIN_SECONDS": "0.1"}
    server = subprocess.Popen([sys.executable, "-m", "modelship_runtime.serving.cli", "--model-uri", loans.uri,
                               "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "-1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    started = datetime.now(UTC) - timedelta(seconds=1)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/v2/health/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        rows = list(data.rows(800, seed=401, shift=data.CONCEPT_SHIFT, missing=0.0))
        sent = []
        for start in range(0, len(rows), 20):
            part = rows[start:start + 20]
            answer = call(base + "/v1/models/loans:predict",
                          {"instances": [{k: v for k, v in r.items() if k != data.TARGET} for r in part]})
            sent += [(answer["id"], j, int(str(r[data.TARGET]))) for j, r in enumerate(part)]
        # Late labels: 300 through the feedback endpoint, 300 in a file; 200 never come.
        posted = call(base + "/v2/models/loans/feedback",
                      {"labels": [{"id": i, "row": j, "label": y} for i, j, y in sent[:300]]})
        assert posted == {"accepted": 300}
        labels = tmp_path / "labels.csv"
        pd.DataFrame(sent[300:600], columns=["request_id", "row", "label"]).to_csv(labels, index=False)
    finally:
        server.send_signal(signal.SIGTERM)  # the queue is written on the way out
        assert server.wait(timeout=30) == 0
    end = datetime.now(UTC) + timedelta(seconds=1)

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"groundtruthUri": store.as_uri() + "/", "labels": [{"uri": labels.as_uri()}],
                                   "start": iso(started), "end": iso(end), "revisions": {"loans-aaa": loans.uri}}))
    out = subprocess.run([sys.executable, "-m", "modelship_runtime.groundtruth.cli", "--request", str(request),
                          "--termination-log", str(tmp_path / "q")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads((tmp_path / "q").read_text())
    (quality,) = answer["revisions"]
    assert (answer["predictions"], answer["labelled"], quality["labelled"]) == (800, 600, 600)
    assert quality["metrics"]["accuracy"] < 0.85 < quality["estimates"]["accuracy"]  # a changed concept

    spec = loan_spec(loans.uri, production={"uri": store.as_uri() + "/", "labels": [{"uri": labels.as_uri()}],
                                            "start": iso(started), "end": iso(end)})
    wire = spec.wire()
    wire["championUri"] = loans.uri
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(wire))
    out = subprocess.run([sys.executable, "-m", "modelship_runtime.training.cli", "--spec", str(tmp_path / "spec.yaml"),
                          "--output", (tmp_path / "v2").as_uri() + "/", "--termination-log", str(tmp_path / "t")],
                         capture_output=True, text=True, timeout=600)
    summary = json.loads((tmp_path / "t").read_text())
    assert out.returncode == 0, (summary, out.stderr[-2000:])
    assert summary["dataset"]["rows"] == 600 and summary["dataset"]["uri"].endswith("/v2/dataset.parquet")
    champion = next(g for g in summary["gates"] if g["name"] == "champion")
    assert "beats it" in champion["message"], champion  # scored on the same production holdout
