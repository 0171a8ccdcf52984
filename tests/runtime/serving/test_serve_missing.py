"""Nulls follow from the artifact (issue 22, item 11): the trainer records
which inputs its graph imputes, and the server accepts nulls for exactly
those, with no flag; a null anywhere else is a 400 naming the feature.

The artifacts are made by the real trainer from the demo's loan data, which
has missing values in a numeric and a categorical column, in both input
modes: columns (numeric and categorical features) and tensor (numeric only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from modelship.api.trainingjob import TrainingJobSpec
from modelship.demo import data as loans
from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.training import train

NUMERIC = ["income", "debt_ratio", "age", "credit_lines", "loan_amount"]
ROW: dict[str, Any] = {"income": 52000.0, "debt_ratio": 0.31, "age": 41.0, "credit_lines": 4,
                       "loan_amount": 12000.0, "region": "north", "employment": "salaried"}


def _train(root: Path, name: str, features: list[str]) -> Path:
    csv = root / f"{name}.csv"
    csv.write_bytes(loans.to_csv(600, seed=5))
    spec = TrainingJobSpec.model_validate({
        "dataset": {"uri": csv.as_uri(), "target": loans.TARGET, "features": features},
        "candidates": [{"estimator": "LogisticRegression", "params": {"C": [1.0]}}],
        "search": {"cvFolds": 2},
    })
    out = root / name
    train.run(spec, out.as_uri(), log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("missing")
    return {"columns": _train(root, "columns", loans.FEATURES), "tensor": _train(root, "tensor", NUMERIC)}


def metadata(path: Path) -> Metadata:
    return Metadata.model_validate_json((path / "metadata.json").read_text())


def with_imputed(src: Path, dst: Path, inputs: list[str]) -> Path:
    """A copy of the artifact whose metadata lists other imputed inputs (the model is the same)."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / "metadata.json").read_text())
    doc["imputedInputs"] = inputs
    (dst / "metadata.json").write_text(json.dumps(doc))
    return dst


def test_the_trainer_records_what_the_graph_imputes(trained: dict[str, Path]) -> None:
    columns, tensor = metadata(trained["columns"]), metadata(trained["tensor"])
    assert columns.input_mode == "columns" and sorted(columns.imputed_inputs) == sorted(loans.FEATURES)
    assert columns.missing_category == ""
    assert tensor.input_mode == "tensor" and tensor.imputed_inputs == [tensor.tensor_input]


def test_imputed_features_are_read_from_the_fitted_pipeline() -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from modelship_runtime.training.pipeline import imputed_features

    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [1.0, 0.0, 1.0, 0.0], "c": ["x", "y", "x", "y"]})
    y = [0, 1, 0, 1]
    partial = Pipeline([("pre", ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a"]),
        ("raw", StandardScaler(), ["b"]),
        ("cat", OneHotEncoder(), ["c"])])), ("est", LogisticRegression())]).fit(frame, y)
    assert imputed_features(partial, ["a", "b"]) == ["a"]
    whole = Pipeline([("impute", SimpleImputer()), ("est", LogisticRegression())]).fit(frame[["a", "b"]], y)
    assert imputed_features(whole, ["a", "b"]) == ["a", "b"]
    none = Pipeline([("est", LogisticRegression())]).fit(frame[["b"]], y)
    assert imputed_features(none, ["b"]) == []


def _local_predict(artifact: Path, feed: dict[str, np.ndarray]) -> list[Any]:
    sess = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    return [v.item() for v in sess.run(["label"], feed)[0].ravel()]


def test_columns_model_serves_nulls_as_its_graph_imputes_them(trained: dict[str, Path], start_server: Any) -> None:
    server = start_server(trained["columns"].as_uri())
    rows = [dict(ROW), {**ROW, "income": None}, {**ROW, "employment": None},
            {**ROW, "income": None, "debt_ratio": None, "employment": None}]
    v1 = server.post("/v1/models/model:predict", json={"instances": rows})
    assert v1.status_code == 200, v1.text
    # What the graph itself does with its missing markers (NaN, and "" for strings).
    feed = {}
    for f in metadata(trained["columns"]).features:
        values = [r[f.name] for r in rows]
        if f.dtype == "string":
            feed[f.name] = np.array([["" if v is None else v] for v in values], dtype=object)
        else:
            feed[f.name] = np.array([[np.nan if v is None else v] for v in values],
                                    dtype=np.float32 if f.dtype == "float" else np.float64)
    assert v1.json()["predictions"] == _local_predict(trained["columns"], feed)
    # The same through the v2 protocol, with a null in a numeric and in a string input.
    inputs = [{"name": k, "shape": [1, 1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
              for k, v in ROW.items()]
    md = metadata(trained["columns"])
    dtypes = {f.name: f.dtype for f in md.features}
    for i in inputs:
        i["datatype"] = {"string": "BYTES", "double": "FP64", "float": "FP32", "int64": "INT64"}[dtypes[i["name"]]]
        if i["name"] in ("income", "employment"):
            i["data"] = [None]
    v2 = server.post("/v2/models/model/infer", json={"inputs": inputs})
    assert v2.status_code == 200, v2.text


def test_tensor_model_serves_nulls_and_still_refuses_infinity(trained: dict[str, Path], start_server: Any) -> None:
    server = start_server(trained["tensor"].as_uri())
    row = [ROW[f] for f in NUMERIC]
    rows = [row, [None, *row[1:]], [row[0], None, row[2], None, row[4]]]
    r = server.post("/v1/models/model:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    matrix = np.array([[np.nan if v is None else v for v in x] for x in rows], dtype=np.float64)
    assert r.json()["predictions"] == _local_predict(trained["tensor"], {"input": matrix})
    v2 = server.post("/v2/models/model/infer", json={"inputs": [
        {"name": "input", "shape": [1, 5], "datatype": "FP64", "data": [None, *row[1:]]}]})
    assert v2.status_code == 200, v2.text
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 5], "datatype": "FP64", "data": [0.0, *row[1:]]}]})
    inf = server.post("/v2/models/model/infer", data=body.replace("[0.0,", "[1e400,", 1),
                      headers={"Content-Type": "application/json"})
    assert inf.status_code == 400 and "infinity" in inf.json()["error"]


@pytest.mark.parametrize(("null_in", "accepted"), [("income", True), ("debt_ratio", False), ("employment", False)])
def test_nulls_are_refused_exactly_where_the_graph_does_not_impute(
        trained: dict[str, Path], start_server: Any, tmp_path: Path, null_in: str, accepted: bool) -> None:
    artifact = with_imputed(trained["columns"], tmp_path / "partial", ["income"])
    server = start_server(artifact.as_uri())
    r = server.post("/v1/models/model:predict", json={"instances": [{**ROW, null_in: None}]})
    if accepted:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400
        assert f"feature {null_in!r}: contains null; the model does not impute this input" in r.json()["error"]


def test_a_tensor_model_that_does_not_impute_names_the_feature(
        trained: dict[str, Path], start_server: Any, tmp_path: Path) -> None:
    artifact = with_imputed(trained["tensor"], tmp_path / "none", [])
    server = start_server(artifact.as_uri())
    row = [ROW[f] for f in NUMERIC]
    r = server.post("/v1/models/model:predict", json={"instances": [row, [*row[:3], None, row[4]]]})
    assert r.status_code == 400
    assert "instances (feature 'credit_lines'): contains null" in r.json()["error"]
    r = server.post("/v2/models/model/infer", json={"inputs": [
        {"name": "input", "shape": [2, 5], "datatype": "FP64", "data": [*row, row[0], None, *row[2:]]}]})
    assert r.status_code == 400
    assert "input 'input' (feature 'debt_ratio'): contains null" in r.json()["error"]


def test_metadata_endpoint_lists_the_imputed_inputs(trained: dict[str, Path], start_server: Any) -> None:
    server = start_server(trained["tensor"].as_uri())
    params = server.get("/v2/models/model").json()["parameters"]
    assert params["imputed_inputs"] == ["input"]
