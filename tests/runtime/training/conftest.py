"""Datasets written once per session, and a fixture that runs the CLI in-process."""

from __future__ import annotations

import os

# As modelship-train does: passive OpenMP threads, set before scikit-learn
# loads OpenMP (effective when these tests are the first to import it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from trainer_helpers import Run, Trainer, biased_frame, mixed_frame

from modelship_runtime.training import cli


def _sklearn_frame(loader: Any) -> pd.DataFrame:
    frame: pd.DataFrame = loader(as_frame=True).frame
    return frame


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    frames = {
        "breast_cancer": _sklearn_frame(load_breast_cancer),
        "wine": _sklearn_frame(load_wine),
        "iris": _sklearn_frame(load_iris),
        "diabetes": _sklearn_frame(load_diabetes),
        "mixed": mixed_frame(),
        "biased": biased_frame(),
    }
    paths: dict[str, Path] = {}
    for name, frame in frames.items():
        paths[name] = root / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["mixed_parquet"] = root / "mixed.parquet"
    frames["mixed"].to_parquet(paths["mixed_parquet"], index=False)
    return paths


@pytest.fixture
def train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Trainer:
    """Run ``modelship-train`` in this process; returns exit code, summary, stderr."""
    counter = iter(range(1000))

    def run(spec: dict[str, Any], output: Path | None = None, fmt: str = "yaml") -> Run:
        n = next(counter)
        out = output or tmp_path / f"artifact{n}"
        spec_file = tmp_path / f"spec{n}.{fmt}"
        spec_file.write_text(yaml.safe_dump(spec) if fmt == "yaml" else json.dumps(spec))
        log = tmp_path / f"termination{n}"
        capsys.readouterr()
        code = cli.main(["--spec", str(spec_file), "--output", f"file://{out}", "--termination-log", str(log)])
        captured = capsys.readouterr()
        lines = captured.out.strip().splitlines()
        assert len(lines) == 1, captured.out
        summary = json.loads(lines[0])
        return Run(code, summary, captured.err, log.read_text() if log.exists() else None, out)

    return run
