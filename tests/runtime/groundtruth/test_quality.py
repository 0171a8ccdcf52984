"""modelship-quality: the log joined with late labels (files, prefixes, feedback), per revision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from groundtruth_helpers import Loans, frame, write_log
from sklearn.metrics import accuracy_score, roc_auc_score

from modelship.api.groundtruth import LabelSource
from modelship.demo import data
from modelship_runtime.groundtruth import cli, join, layout
from modelship_runtime.groundtruth.parquet import Column, write_table


def run(tmp_path: Path, request: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request, default=str))
    term = tmp_path / "termination-log"
    code = cli.main(["--request", str(path), "--termination-log", str(term)])
    text = term.read_text()
    assert len(text.encode()) < 4096
    return code, json.loads(text), text


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def store(tmp_path: Path, loans: Loans) -> dict[str, Any]:
    """Two revisions' traffic: rev-old on the old concept, rev-new on a changed one; labels for part of it."""
    root = tmp_path / "gt"
    old = frame(600, seed=201)
    new = frame(400, seed=202, shift=data.CONCEPT_SHIFT)
    old_ids = [f"o-{i}" for i in range(len(old))]
    new_ids = [f"n-{i}" for i in range(len(new))]
    write_log(root, loans, old, old_ids, "rev-old")
    write_log(root, loans, new, new_ids, "rev-new")
    labels = tmp_path / "labels"
    labels.mkdir()
    # Labels for 60% of the old traffic as CSV, 50% of the new as Parquet under a prefix.
    pd.DataFrame({"request_id": old_ids[:360], "label": old[data.TARGET][:360]}).to_csv(labels / "old.csv", index=False)
    (labels / "batch").mkdir()
    pq.write_table(pa.table({"request_id": new_ids[:200], "outcome": new[data.TARGET][:200].astype(float)}),
                   labels / "batch" / "day1.parquet")
    (labels / "batch" / "README.txt").write_text("not a label file")
    return {"root": root, "old": old, "new": new, "labels": labels, "old_ids": old_ids, "new_ids": new_ids}


def request(store: dict[str, Any], loans: Loans, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "groundtruthUri": store["root"].as_uri() + "/",
        "labels": [{"uri": (store["labels"] / "old.csv").as_uri()},
                   {"uri": (store["labels"] / "batch").as_uri() + "/", "labelColumn": "outcome"}],
        "start": iso(now - timedelta(hours=1)), "end": iso(now + timedelta(minutes=1)),
        "revisions": {"rev-new": loans.uri, "rev-old": loans.uri},
        **extra,
    }


def test_quality_per_revision_matches_a_direct_computation(tmp_path: Path, store: dict[str, Any], loans: Loans) -> None:
    code, summary, _ = run(tmp_path, request(store, loans))
    assert code == 0, summary
    assert summary["predictions"] == 1000 and summary["labels"] == 560 and summary["labelled"] == 560
    by_rev = {r["revision"]: r for r in summary["revisions"]}
    assert [r["revision"] for r in summary["revisions"]] == ["rev-new", "rev-old"]
    for rev, rows, _ids, n in (("rev-old", store["old"], store["old_ids"], 360), ("rev-new", store["new"],
                                                                                  store["new_ids"], 200)):
        r = by_rev[rev]
        assert r["rows"] == len(rows) and r["labelled"] == n
        _, outputs = loans.predict(rows.iloc[:n])
        truth = rows[data.TARGET][:n].to_numpy()
        assert r["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, outputs["label"].ravel()), abs=1e-6)
        assert r["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(truth, outputs["probabilities"][:, 1]), abs=1e-6)
        assert set(r["estimates"]) == {"accuracy", "roc_auc"}
    # The changed concept: the estimate (from scores alone) stays high, the labels show the drop.
    assert by_rev["rev-new"]["metrics"]["accuracy"] < by_rev["rev-old"]["metrics"]["accuracy"] - 0.05
    assert by_rev["rev-new"]["estimates"]["accuracy"] - by_rev["rev-new"]["metrics"]["accuracy"] > 0.05
    assert summary["rowsPerSecond"] > 0 and summary["peakRssMiB"] > 0


def test_feedback_labels_are_read_and_the_last_label_wins(tmp_path: Path, store: dict[str, Any], loans: Loans) -> None:
    root: Path = store["root"]
    wrong = 1 - int(store["old"][data.TARGET][0])
    # The feedback endpoint's files, then a correction in a later file.
    for name, label in (("a", wrong), ("b", int(store["old"][data.TARGET][0]))):
        part = root / layout.FEEDBACK_DIR / "date=2026-01-01" / "hour=00"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"pod.{name}.000001.parquet").write_bytes(write_table([
            Column(layout.REQUEST_ID, "string", ["o-0", "o-599"]), Column(layout.ROW, "int64", np.zeros(2, np.int64)),
            Column(layout.LABEL, "string", [str(label), "1"])]))
    labels = join.read_labels([join.feedback_source(root.as_uri() + "/")])
    assert len(labels.frame) == 2 and labels.files == 2
    assert dict(zip(labels.frame.request_id, labels.frame.label, strict=True))["o-0"] == str(1 - wrong)
    code, summary, _ = run(tmp_path, request(store, loans, labels=[]))
    assert code == 0 and summary["labelled"] == 2


def test_the_window_limits_the_predictions(tmp_path: Path, store: dict[str, Any], loans: Loans) -> None:
    future = datetime.now(UTC) + timedelta(hours=2)
    code, summary, _ = run(tmp_path, request(store, loans, start=iso(future), end=iso(future + timedelta(hours=1))))
    assert code == 0 and summary["predictions"] == 0
    assert {r["revision"]: r["rows"] for r in summary["revisions"]} == {"rev-new": 0, "rev-old": 0}


def test_label_files_with_bad_columns_or_requests_fail_with_their_codes(tmp_path: Path, store: dict[str, Any],
                                                                         loans: Loans) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,truth\na,1\n")
    code, summary, _ = run(tmp_path, request(store, loans, labels=[{"uri": bad.as_uri()}]))
    assert code == 3 and summary["reason"] == "InvalidData" and "request_id" in summary["message"]
    code, summary, _ = run(tmp_path, {"groundtruthUri": "ftp://x", "start": "x", "end": "y"})
    assert code == 2 and summary["reason"] == "InvalidRequest"


def test_http_label_file_and_csv_ids_stay_text(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "labels.csv").write_text("request_id,row,label\n007,0,1\n007,1,0\n8,0,yes\n")
    got = join.read_labels([LabelSource(uri=f"{base}/labels.csv")]).frame
    assert list(zip(got.request_id, got.row, got.label, strict=True)) == [("007", 0, "1"), ("007", 1, "0"), ("8", 0, "yes")]


def test_the_answer_fits_the_termination_message() -> None:
    summary = {"ok": True, "revisions": [{"revision": f"model-{i:010d}", "rows": 10**6, "labelled": 10**5,
                                          "metrics": {m: 0.123456 for m in ("accuracy", "roc_auc", "f1", "precision",
                                                                           "recall", "balanced_accuracy")},
                                          "estimates": {"accuracy": 0.9, "roc_auc": 0.9}, "note": "x" * 200}
                                         for i in range(40)]}
    text = cli.fit(summary)
    fitted = json.loads(text)
    assert len(text.encode()) < 4096 and fitted["truncated"] and fitted["revisions"][0]["revision"] == "model-0000000000"
