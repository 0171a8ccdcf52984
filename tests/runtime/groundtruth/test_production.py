"""The trainer on production data: the window's labelled logged rows, written as a dataset with its sha256."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from groundtruth_helpers import Loans, frame, loan_spec, write_log

from modelship.demo import data
from modelship_runtime.training import cli


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def production(tmp_path: Path, loans: Loans) -> dict[str, Any]:
    root = tmp_path / "gt"
    rows = frame(700, seed=301, shift=data.CONCEPT_SHIFT)
    ids = [f"p-{i}" for i in range(len(rows))]
    write_log(root, loans, rows, ids, "loans-aaa")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ids[:500], "label": rows[data.TARGET][:500]}).to_csv(labels, index=False)
    (tmp_path / "train.csv").write_bytes(data.to_csv(4000, seed=7))
    now = datetime.now(UTC)
    return {"root": root, "labels": labels, "rows": rows, "train": tmp_path / "train.csv",
            "start": iso(now - timedelta(hours=1)), "end": iso(now + timedelta(minutes=5))}


def train(tmp_path: Path, production: dict[str, Any], loans: Loans, **prod: Any) -> tuple[int, dict[str, Any], Path]:
    spec = loan_spec(production["train"].as_uri(), production={
        "uri": production["root"].as_uri() + "/", "labels": [{"uri": production["labels"].as_uri()}],
        "start": production["start"], "end": production["end"], **prod,
    }).model_copy(update={"champion_uri": loans.uri})
    wire = spec.wire()
    wire["gates"] = {"mustBeatChampion": True}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(wire))
    out = tmp_path / "out"
    code = cli.main(["--spec", str(path), "--output", out.as_uri() + "/", "--termination-log", str(tmp_path / "t")])
    return code, json.loads((tmp_path / "t").read_text()), out


def test_retrains_on_the_labelled_rows_and_beats_the_champion_on_their_holdout(
        tmp_path: Path, production: dict[str, Any], loans: Loans) -> None:
    code, summary, out = train(tmp_path, production, loans)
    assert code == 0, summary
    written = out / "dataset.parquet"
    assert summary["dataset"] == {"uri": written.as_uri(), "sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
                                  "rows": 500}
    table = pq.read_table(written).to_pandas()
    assert list(table.columns) == [*data.FEATURES, data.TARGET] and len(table) == 500
    expected = production["rows"].iloc[:500].reset_index(drop=True)
    assert (table[data.TARGET].to_numpy() == expected[data.TARGET].to_numpy()).all()
    champion = next(g for g in summary["gates"] if g["name"] == "champion")
    assert champion["passed"], champion  # the old model, scored on the same production holdout, is worse
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["datasetUri"] == written.as_uri() and metadata["datasetRows"] == 500


def test_production_rows_can_follow_the_training_rows(tmp_path: Path, production: dict[str, Any],
                                                     loans: Loans) -> None:
    code, summary, _ = train(tmp_path, production, loans, includeTrainingData=True, revisions=["loans-aaa"])
    assert summary["dataset"]["rows"] == 4500, summary
    assert code in (0, 4)  # the champion gate may or may not pass on the mixed holdout; the data is what counts


def test_too_few_labelled_rows_is_invalid_data(tmp_path: Path, production: dict[str, Any], loans: Loans) -> None:
    code, summary, _ = train(tmp_path, production, loans, minRows=501)
    assert code == 3 and summary["reason"] == "InvalidData"
    assert "500 labelled production rows" in summary["message"] and "minRows is 501" in summary["message"]
    code, summary, _ = train(tmp_path, production, loans, revisions=["other"])
    assert code == 3 and "0 labelled production rows" in summary["message"]


def test_every_process_of_a_run_trains_on_the_rows_the_first_one_joined(
        tmp_path: Path, production: dict[str, Any], loans: Loans) -> None:
    """A fanned-out search's shares and refit (or a retried pod) share one output: labels that
    arrive in between must not change the data (the shares' dataset digests must agree)."""
    code, first, out = train(tmp_path, production, loans)
    assert code == 0, first
    written = (out / "dataset.parquet").read_bytes()
    more = pd.read_csv(production["labels"])
    rows = production["rows"]
    extra = pd.DataFrame({"request_id": [f"p-{i}" for i in range(500, 700)],
                          "label": rows[data.TARGET][500:700].to_numpy()})
    pd.concat([more, extra]).to_csv(production["labels"], index=False)  # 200 more labels arrived
    (out / "metadata.json").unlink()  # as a share or refit finds it: the data, not yet the model
    (out / "model.onnx").unlink()
    code, again, _ = train(tmp_path, production, loans)
    assert code == 0, again
    assert again["dataset"] == first["dataset"] and again["dataset"]["rows"] == 500
    assert (out / "dataset.parquet").read_bytes() == written
