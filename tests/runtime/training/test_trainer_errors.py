"""Bad data and bad specs: each case exits with its code and says what to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import Trainer, mixed_frame, spec_for

from modelship_runtime.training import cli

BAD_SPEC, BAD_DATA, STORE = 2, 3, 5


def _frame() -> pd.DataFrame:
    return mixed_frame(200)


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


DATA_CASES: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], dict[str, Any], str]] = [
    ("missing target", lambda f: f.drop(columns=["label"]), {}, "target column 'label' is not in the data"),
    ("missing feature", lambda f: f, {"features": ["a", "nope"]}, "feature columns not in the data: nope"),
    ("missing sensitive", lambda f: f, {"sensitiveFeature": "nope"}, "sensitiveFeature 'nope' is not in the data"),
    ("too many missing", lambda f: f.assign(b=np.where(np.arange(len(f)) % 4 == 0, 1.0, np.nan)),
     {"maxMissingRatio": 0.5}, "column 'b' has 75.0% missing values, over the limit of 50.0%"),
    ("missing target values", lambda f: f.assign(label=f["label"].where(np.arange(len(f)) % 10 != 0)),
     {}, "the target has 10.0% missing values"),
    ("single class", lambda f: f.assign(label=1), {}, "has a single class"),
    ("too few rows for folds", lambda f: f.head(12), {}, "too few"),
    ("rare class for folds", lambda f: f.assign(label=np.where(np.arange(len(f)) < 3, 2, f["label"])), {},
     "class 2 has 3 rows: too few for 3 CV folds"),
    ("identical columns", lambda f: f.assign(c=f["b"]), {}, "duplicated columns (identical values): b=c"),
    ("text not declared categorical", lambda f: f, {"categoricalFeatures": ["color"]},
     "column 'size' is not numeric"),
    ("dates", lambda f: f.assign(when=pd.Timestamp("2024-01-01")), {"features": ["a", "when"]}, "holds dates"),
]


@pytest.mark.parametrize(("case", "mutate", "dataset", "message"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(
    train: Trainer, tmp_path: Path, case: str, mutate: Callable[[pd.DataFrame], pd.DataFrame],
    dataset: dict[str, Any], message: str,
) -> None:
    frame = mutate(_frame())
    if case == "dates":
        path = tmp_path / "data.parquet"
        frame.to_parquet(path)
    else:
        path = _write(tmp_path, frame)
    run = train(spec_for(path, "label", dataset=dataset))
    assert run.code == BAD_DATA, run.stderr
    assert message in run.stderr and message in run.summary["message"]
    assert run.summary["reason"] == "InvalidData" and run.summary["exitCode"] == BAD_DATA
    assert run.termination is not None and json.loads(run.termination)["reason"] == "InvalidData"
    assert not (run.output / "metadata.json").exists()


def test_duplicated_column_names(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("a,b,a,label\n" + "".join(f"{i},{i * 2},{i % 3},{i % 2}\n" for i in range(50)))
    run = train(spec_for(path, "label"))
    assert run.code == BAD_DATA and "duplicated column names: a" in run.stderr


def test_unparseable_and_absent_data(train: Trainer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    run = train(spec_for(bad, "label"))
    assert run.code == BAD_DATA and "cannot parse as parquet" in run.stderr
    run = train(spec_for(tmp_path / "absent.csv", "label"))
    assert run.code == BAD_DATA and "dataset not found" in run.stderr


def test_regression_target_must_be_numeric(train: Trainer, datasets: dict[str, Path]) -> None:
    run = train(spec_for(datasets["mixed"], "size", {"estimator": "Ridge"}, task="regression",
                         dataset={"features": ["a", "b"]}))
    assert run.code == BAD_DATA and "a regression target must be numeric" in run.stderr


SPEC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown estimator", {"candidates": [{"estimator": "sklearn.svm.SVC"}]},
     "candidates.0.estimator: Input should be 'LogisticRegression'"),
    ("unknown parameter", {"candidates": [{"estimator": "LogisticRegression", "params": {"nope": [1]}}]},
     "LogisticRegression parameters {'nope': 1}"),
    ("bad parameter value", {"candidates": [{"estimator": "LogisticRegression", "params": {"C": [-1]}}]},
     "LogisticRegression parameters {'C': -1}"),
    ("regressor for classes", {"candidates": [{"estimator": "Lasso"}]},
     "Lasso cannot do classification; for classification use one of: LogisticRegression"),
    ("classifier for regression", {"task": "regression", "candidates": [{"estimator": "NaiveBayes"}]},
     "a regression target"),  # binary labels as numbers make a valid regression target: see below
    ("metric mismatch", {"metric": "rmse"}, "metric rmse is for regression but the task is classification"),
    ("distributions with grid", {"candidates": [{"estimator": "LogisticRegression",
                                                 "distributions": {"C": {"kind": "uniform", "low": 0.1, "high": 1}}}]},
     "distributions need search.strategy random"),
    ("fairness without sensitive feature", {"gates": {"fairness": {"maxDemographicParityDifference": 0.1}}},
     "gates.fairness needs dataset.sensitiveFeature"),
    ("pca larger than the features", {"dataset": {"features": ["a", "b"]}, "pipeline": {"pca": {"components": 5}}},
     "pipeline.pca.components is 5 but there are only 2 numeric features"),
    ("unknown field", {"search": {"folds": 3}}, "search.folds: Extra inputs are not permitted"),
    ("reweighing without weights", {"dataset": {"sensitiveFeature": "group"},
                                    "candidates": [{"estimator": "KNeighbors"}],
                                    "gates": {"fairness": {"mitigation": "reweighing"}}},
     "KNeighbors takes no sample weights"),
]


@pytest.mark.parametrize(("case", "changes", "message"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_spec(train: Trainer, datasets: dict[str, Path], case: str, changes: dict[str, Any], message: str) -> None:
    spec = spec_for(datasets["mixed"], "label", **changes)
    if case == "classifier for regression":
        message = "NaiveBayes cannot do regression"
    run = train(spec)
    assert run.code == BAD_SPEC, run.stderr
    assert message in run.stderr, run.stderr
    assert run.summary["reason"] == "InvalidSpec"


def test_spec_file_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("dataset: [unclosed")
    log = tmp_path / "log"
    assert cli.main(["--spec", str(bad_yaml), "--termination-log", str(log)]) == BAD_SPEC
    assert "is not YAML or JSON" in capsys.readouterr().err
    assert cli.main(["--spec", str(tmp_path / "absent.yaml"), "--termination-log", str(log)]) == BAD_SPEC
    assert "cannot read the spec file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == BAD_SPEC


def test_no_output_location(tmp_path: Path, datasets: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_for(datasets["iris"], "target")))
    assert cli.main(["--spec", str(spec), "--termination-log", str(tmp_path / "log")]) == BAD_SPEC
    assert "pass --output URI or set spec.outputUri" in capsys.readouterr().err


def test_unwritable_output_is_a_store_error(tmp_path: Path, datasets: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_for(datasets["iris"], "target", {"estimator": "NaiveBayes"})))
    code = cli.main(["--spec", str(spec), "--output", f"file://{blocker}/artifact",
                     "--termination-log", str(tmp_path / "log")])
    assert code == STORE
    assert "cannot write the artifact" in capsys.readouterr().err


def test_termination_summary_is_cut_under_4_kib() -> None:
    summary = {"passed": False, "leaderboard": [{"params": "x" * 3000}], "message": "m" * 9000,
               "gates": [{"name": "g", "passed": False, "message": "y" * 3000}]}
    text = cli.fit_summary(summary)
    assert len(text.encode()) < 4096 and json.loads(text)["passed"] is False


SIGTERM_DURING_IMPORTS = """
import importlib.abc, os, signal, sys
from modelship_runtime.training import cli

class SignalWhileLoading(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "modelship_runtime.training.fanout":  # the first of the heavy imports
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, SignalWhileLoading())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_while_scikit_learn_loads_exits_143(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """A pod deleted in its first seconds (imports take seconds on a busy node) must exit 143, which
    the Job's podFailurePolicy ignores, and never die some other way the policy counts or fails on."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(spec_for(datasets["mixed"], "label")))
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_DURING_IMPORTS, "--spec", str(spec), "--output", f"file://{tmp_path}/out",
         "--termination-log", str(tmp_path / "log")],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 143, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["reason"] == "Terminated" and summary["exitCode"] == 143
    assert json.loads((tmp_path / "log").read_text())["reason"] == "Terminated"
    assert not (tmp_path / "out").exists()
