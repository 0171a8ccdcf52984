"""The trainer reads datasets over http:// and s3:// and writes artifacts to s3://."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris

from modelship_runtime.artifacts import store
from modelship_runtime.training import cli


def _run(tmp_path: Path, spec: dict[str, object], output: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    code = cli.main(["--spec", str(path), "--output", output, "--termination-log", str(tmp_path / "log")])
    out = capsys.readouterr()
    summary: dict[str, object] = json.loads(out.out)
    return code, summary, out.err


def _spec(uri: str, **dataset: object) -> dict[str, object]:
    return {
        "dataset": {"uri": uri, "target": "target", **dataset},
        "candidates": [{"estimator": "LogisticRegression"}],
        "search": {"cvFolds": 3},
    }


def test_s3_dataset_and_s3_artifact(s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame: pd.DataFrame = load_iris(as_frame=True).frame
    local = tmp_path / "iris.parquet"
    frame.to_parquet(local)
    boto3.client("s3").put_object(Bucket=s3, Key="data/iris.parquet", Body=local.read_bytes())
    code, summary, err = _run(tmp_path, _spec(f"s3://{s3}/data/iris.parquet"), f"s3://{s3}/models/iris/1", capsys)
    assert code == 0, err
    assert summary["dataset"] == {"uri": f"s3://{s3}/data/iris.parquet", "sha256": store.sha256_hex(local.read_bytes()), "rows": 150}
    meta = store.read_metadata(f"s3://{s3}/models/iris/1")
    assert meta.model_sha256 == summary["artifact"]["sha256"]  # type: ignore[index]
    assert store.fetch_model(f"s3://{s3}/models/iris/1", tmp_path / "dl").stat().st_size > 0


def test_s3_dataset_missing_and_unreachable_store(s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(tmp_path, _spec(f"s3://{s3}/data/absent.csv"), f"file://{tmp_path / 'out'}", capsys)
    assert code == 3 and "dataset not found" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, summary, err = _run(tmp_path, _spec(f"s3://{s3}/data/x.csv"), f"file://{tmp_path / 'out'}", capsys)
    assert code == 5 and summary["reason"] == "StoreError" and "cannot read the dataset" in err


def test_http_dataset(http_root: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, base = http_root
    frame: pd.DataFrame = load_iris(as_frame=True).frame
    frame.to_csv(root / "iris.data", index=False)
    code, summary, err = _run(tmp_path, _spec(f"{base}/iris.data", format="csv"), f"file://{tmp_path / 'out'}", capsys)
    assert code == 0, err
    assert summary["dataset"]["rows"] == 150  # type: ignore[index]
    code, _, err = _run(tmp_path, _spec(f"{base}/iris.data"), f"file://{tmp_path / 'out'}", capsys)
    assert code == 2 and "set dataset.format" in err
