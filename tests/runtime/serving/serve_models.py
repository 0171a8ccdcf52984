"""Test artifacts for the server: ONNX models built with skl2onnx and hand-written metadata.

Four artifacts (tensor-mode logistic pipeline and 100-tree forest on 30
features, a float64 regression, a mixed numeric/categorical "columns" model)
and the logistic model as a bare .onnx file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from modelship_runtime.artifacts.metadata import (
    CategoricalReference,
    DriftReference,
    Feature,
    InputMode,
    Metadata,
    NumericReference,
    Output,
)

N_FEATURES = 30


def _edges(x: np.ndarray, bins: int = 10) -> list[float]:
    q = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return [float(v) for v in q]


def _numeric_ref(x: np.ndarray) -> NumericReference:
    edges = _edges(x)
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
    return NumericReference(edges=edges, proportions=list(counts / counts.sum()))


def _write(directory: Path, onx: Any, metadata: Metadata | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    blob = onx.SerializeToString()
    (directory / "model.onnx").write_bytes(blob)
    if metadata is not None:
        metadata.model_sha256 = hashlib.sha256(blob).hexdigest()
        (directory / "metadata.json").write_text(metadata.model_dump_json(by_alias=True))
    return directory


def classification_data(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    return x, y


def _tensor_metadata(name: str, x: np.ndarray, task: str, outputs: list[Output], pred: Any,
                     dtype: str = "float") -> Metadata:
    features = [Feature(name=f"f{i}", type="numeric", dtype=dtype) for i in range(x.shape[1])]
    return Metadata(
        model_name=name, model_version="3", task=task, features=features, input_mode=InputMode.TENSOR,
        tensor_input="input", tensor_dtype=dtype, outputs=outputs, classes=[0, 1] if task != "regression" else None,
        model_sha256="",
        reference=DriftReference(
            features={f"f{i}": _numeric_ref(x[:, i]) for i in range(x.shape[1])}, prediction=pred, rows=len(x)
        ),
    )


def build_logistic(directory: Path, invert: bool = False) -> Path:
    """invert: trained on the flipped labels, so it answers the other class (a Ready-but-wrong model)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = classification_data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, 1 - y if invert else y)
    onx = to_onnx(pipe, x[:1], options={"zipmap": False}, initial_types=_float_input(), target_opset=17)
    _rename_outputs(onx, {"output_label": "label", "output_probability": "probabilities"})
    pred = CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.45, 0.05])
    md = _tensor_metadata("logistic", x, "binary",
                          [Output(name="label", role="label"), Output(name="probabilities", role="probabilities")], pred)
    return _write(directory, onx, md)


def build_forest(directory: Path, trees: int = 100) -> Path:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x, y = classification_data()
    forest = RandomForestClassifier(n_estimators=trees, max_depth=8, random_state=0, n_jobs=1).fit(x, y)
    onx = to_onnx(forest, x[:1], options={"zipmap": False}, initial_types=_float_input(), target_opset=17)
    _rename_outputs(onx, {"output_label": "label", "output_probability": "probabilities"})
    pred = CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.5, 0.0])
    md = _tensor_metadata("forest", x, "binary",
                          [Output(name="label", role="label"), Output(name="probabilities", role="probabilities")], pred)
    return _write(directory, onx, md)


def build_regression(directory: Path, offset: float = 0.0) -> Path:
    """offset: added to the target, so this model's predictions are ``offset`` higher."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 10 + offset
    model = Ridge().fit(x, y)
    onx = to_onnx(model, initial_types=[("input", DoubleTensorType([None, 5]))], target_opset=17)
    _rename_outputs(onx, {"variable": "value"})
    pred = _numeric_ref(model.predict(x))
    md = _tensor_metadata("regression", x, "regression", [Output(name="value", role="value")], pred, dtype="double")
    return _write(directory, onx, md)


def mixed_frame(rows: int = 600, seed: int = 2) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.uniform(18, 90, rows).astype(np.float32),
        "city": rng.choice(["paris", "lyon", "nice"], rows),
        "visits": rng.integers(0, 20, rows).astype(np.int64),
    })


def build_mixed(directory: Path) -> Path:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = mixed_frame()
    y = ((df["age"] > 50) ^ (df["city"] == "lyon")).astype(np.int64).to_numpy()
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["age", "visits"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
    ])
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=300))]).fit(df, y)
    types = [("age", FloatTensorType([None, 1])), ("city", StringTensorType([None, 1])),
             ("visits", Int64TensorType([None, 1]))]
    onx = to_onnx(pipe, initial_types=types, options={"zipmap": False}, target_opset=17)
    _rename_outputs(onx, {"output_label": "label", "output_probability": "probabilities"})
    md = Metadata(
        model_name="mixed", model_version="1", task="binary", input_mode=InputMode.COLUMNS,
        features=[Feature(name="age", type="numeric", dtype="float"),
                  Feature(name="city", type="categorical", dtype="string"),
                  Feature(name="visits", type="numeric", dtype="int64")],
        outputs=[Output(name="label", role="label"), Output(name="probabilities", role="probabilities")],
        classes=[0, 1], model_sha256="",
        reference=DriftReference(
            features={
                "age": _numeric_ref(df["age"].to_numpy()),
                "city": CategoricalReference(categories=["lyon", "nice", "paris"], proportions=[0.3, 0.3, 0.4, 0.0]),
                "visits": _numeric_ref(df["visits"].to_numpy().astype(float)),
            },
            prediction=CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.5, 0.0]),
            rows=len(df),
        ),
    )
    return _write(directory, onx, md)


def build_bare(path: Path) -> Path:
    """The logistic pipeline as a bare file, default skl2onnx names and ZipMap output."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = classification_data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y)
    onx = to_onnx(pipe, x[:1], target_opset=17)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def _float_input() -> list[Any]:
    from skl2onnx.common.data_types import FloatTensorType

    return [("input", FloatTensorType([None, N_FEATURES]))]


def _rename_outputs(onx: Any, names: dict[str, str]) -> None:
    for out in onx.graph.output:
        if out.name in names:
            new = names[out.name]
            for node in onx.graph.node:
                for i, o in enumerate(node.output):
                    if o == out.name:
                        node.output[i] = new
            out.name = new


def build_types(path: Path) -> Path:
    """A tiny graph with one input per datatype (BOOL, INT32, INT64, FP32, FP64, BYTES), echoed back."""
    from onnx import TensorProto, helper

    kinds = {"b": TensorProto.BOOL, "i32": TensorProto.INT32, "i64": TensorProto.INT64,
             "f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "s": TensorProto.STRING}
    inputs = [helper.make_tensor_value_info(n, k, [None, 2]) for n, k in kinds.items()]
    outputs = [helper.make_tensor_value_info(f"{n}_out", k, [None, 2]) for n, k in kinds.items()]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in kinds]
    graph = helper.make_graph(nodes, "types", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path
