"""scikit-learn pipeline → ONNX, the feeds it takes, and the parity check.

The preprocessing runs in double precision (as in scikit-learn). Tree models
get a float32 cast right before the trees (the pipeline's Float32 step),
because scikit-learn casts their input to float32 too; skl2onnx then adjusts
the thresholds so float32 comparisons decide exactly as scikit-learn does. Outputs are renamed to
``label`` + ``probabilities`` (classifiers, no ZipMap) or ``value``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common import tree_ensemble as _tree_ensemble
from skl2onnx.common._registration import get_converter, register_converter
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from skl2onnx.operator_converters.common import concatenate_variables
from sklearn.pipeline import Pipeline

from modelship_runtime.artifacts.metadata import Feature, FeatureType, InputMode, Output
from modelship_runtime.training.data import MISSING_CATEGORY
from modelship_runtime.training.pipeline import ESTIMATOR_STEP, Float32, imputed_features

OPSET = 21
TENSOR_INPUT = "input"
LABEL, PROBABILITIES, VALUE = "label", "probabilities", "value"

_original_imputer = get_converter("SklearnSimpleImputer")


def _imputer_converter(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer on doubles: Where(IsNaN(x), statistics, x).

    skl2onnx emits ai.onnx.ml Imputer, which onnxruntime runs on float only.
    """
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        _original_imputer(scope, operator, container)
        return
    stats = np.asarray(operator.raw_operator.statistics_, dtype=np.float64)
    x = concatenate_variables(scope, operator.inputs, container)
    stats_name = scope.get_unique_variable_name("impute_stats")
    container.add_initializer(stats_name, TensorProto.DOUBLE, [1, len(stats)], stats.tolist())
    isnan = scope.get_unique_variable_name("isnan")
    container.add_node("IsNaN", [x], [isnan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where", [isnan, stats_name, x], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Where")
    )


register_converter("SklearnSimpleImputer", _imputer_converter, overwrite=True)


def imputed_inputs(pipeline: Pipeline, numeric: list[str], features: list[Feature],
                   tensor_input: str | None) -> list[str]:
    """The ONNX inputs whose missing values the converted graph fills in (metadata's ``imputedInputs``).

    Columns mode: each imputed feature's own input. Tensor mode: the one
    input, when every column of it is imputed (else a null could reach a
    column that is not).
    """
    imputed = set(imputed_features(pipeline, numeric))
    if tensor_input is not None:
        return [tensor_input] if imputed and imputed >= {f.name for f in features} else []
    return [f.name for f in features if f.name in imputed]


@dataclass
class Converted:
    model: onnx.ModelProto
    input_mode: InputMode
    features: list[Feature]
    outputs: list[Output]

    def bytes(self) -> bytes:
        data: bytes = self.model.SerializeToString()
        return data


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new


def _outputs_as_double(graph: onnx.GraphProto, names: list[str]) -> None:
    # Tree and SVM regressor nodes emit float32 whatever skl2onnx declares;
    # a final Cast gives every model the same double outputs.
    for value in graph.output:
        if value.name in names:
            name = value.name
            _rename(graph, name, name + "_raw")
            graph.node.append(helper.make_node("Cast", [name + "_raw"], [name], to=TensorProto.DOUBLE, name=f"cast_{name}"))
            value.name = name
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    kept = [v for v in graph.value_info if not v.name.endswith("_raw")]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _sum_trees_in_double(graph: onnx.GraphProto) -> None:
    """Give each tree of a regression ensemble its own float32 output and add them in double.

    onnxruntime sums the trees of one target in float32, which on targets in
    the hundreds drifts past 1e-4 from scikit-learn's double sum.
    """
    for index, node in enumerate(list(graph.node)):
        if node.op_type != "TreeEnsembleRegressor":
            continue
        attrs = {a.name: a for a in node.attribute}
        if helper.get_attribute_value(attrs["n_targets"]) != 1:
            continue
        tree_of_leaf = list(helper.get_attribute_value(attrs["target_treeids"]))
        trees = sorted(set(tree_of_leaf))
        if len(trees) < 2:
            continue
        slot = {t: i for i, t in enumerate(trees)}
        base = 0.0
        if "base_values" in attrs:
            base = float(helper.get_attribute_value(attrs["base_values"])[0])
        keep = [a for a in node.attribute if a.name not in ("n_targets", "target_ids", "base_values")]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(helper.make_attribute("n_targets", len(trees)))
        node.attribute.append(helper.make_attribute("target_ids", [slot[t] for t in tree_of_leaf]))
        out = node.output[0]
        prefix = f"{node.name}_pertree"
        node.output[0] = prefix
        axes, base_name = f"{prefix}_axes", f"{prefix}_base"
        graph.initializer.append(helper.make_tensor(axes, TensorProto.INT64, [1], [1]))
        graph.initializer.append(helper.make_tensor(base_name, TensorProto.DOUBLE, [], [base]))
        extra = [
            helper.make_node("Cast", [prefix], [f"{prefix}_d"], to=TensorProto.DOUBLE, name=f"{prefix}_cast"),
            helper.make_node("ReduceSum", [f"{prefix}_d", axes], [f"{prefix}_sum"], keepdims=1, name=f"{prefix}_sum"),
            helper.make_node("Add", [f"{prefix}_sum", base_name], [f"{prefix}_total"], name=f"{prefix}_add"),
            helper.make_node("Identity", [f"{prefix}_total"], [out], name=f"{prefix}_out"),
        ]
        for offset, new in enumerate(extra, start=1):
            graph.node.insert(index + offset, new)


def _float32_shape(operator: Any) -> None:
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, operator.inputs[0].get_second_dimension()])


def _float32_converter(scope: Any, operator: Any, container: Any) -> None:
    container.add_node(
        "Cast",
        [operator.inputs[0].full_name],
        [operator.outputs[0].full_name],
        to=TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Float32"),
    )


update_registered_converter(Float32, "ModelshipFloat32", _float32_shape, _float32_converter)


def _add_node_int_missing(*args: Any, **kwargs: Any) -> Any:
    # skl2onnx passes a Python bool for leaves of HistGradientBoosting trees,
    # which onnx refuses in an ints attribute.
    if "nodes_missing_value_tracks_true" in kwargs:
        kwargs["nodes_missing_value_tracks_true"] = int(kwargs["nodes_missing_value_tracks_true"])
    return _original_add_node(*args, **kwargs)


_original_add_node = _tree_ensemble.add_node
_tree_ensemble.add_node = _add_node_int_missing


def to_onnx(
    pipeline: Pipeline,
    numeric: list[str],
    categorical: list[str],
    classification: bool,
    name: str = "modelship",
) -> Converted:
    """Convert a fitted pipeline (see ``pipeline.build_pipeline``)."""
    estimator = pipeline.named_steps[ESTIMATOR_STEP]
    if categorical:
        mode = InputMode.COLUMNS
        # ColumnTransformer finds its columns among the inputs by name.
        types: list[tuple[str, Any]] = [(c, DoubleTensorType([None, 1])) for c in numeric]
        types += [(c, StringTensorType([None, 1])) for c in categorical]
        features = [Feature(name=c, type=FeatureType.NUMERIC, dtype="double") for c in numeric]
        features += [Feature(name=c, type=FeatureType.CATEGORICAL, dtype="string") for c in categorical]
    else:
        mode = InputMode.TENSOR
        types = [(TENSOR_INPUT, DoubleTensorType([None, len(numeric)]))]
        features = [Feature(name=c, type=FeatureType.NUMERIC, dtype="double") for c in numeric]
    options = {id(estimator): {"zipmap": False}} if classification else None
    with warnings.catch_warnings():
        # skl2onnx's SVM converter reads probA_/probB_, deprecated in scikit-learn 1.9
        # (unused here: SVC is calibrated, never probability=True).
        warnings.filterwarnings("ignore", message=r"Attribute `prob[AB]_` was deprecated", category=FutureWarning)
        model = convert_sklearn(pipeline, initial_types=types, options=options, target_opset=OPSET)
    graph = model.graph
    wanted = [LABEL, PROBABILITIES] if classification else [VALUE]
    for value, new in zip(list(graph.output), wanted, strict=True):
        if value.name != new:
            _rename(graph, value.name, new)
    if not classification:
        _sum_trees_in_double(graph)
    _outputs_as_double(graph, [PROBABILITIES, VALUE])
    # skl2onnx lists opsets in set order, which changes with Python's hash
    # seed from run to run; sorted, the same model gives the same bytes.
    # (It may also list a domain twice.)
    opsets: dict[str, int] = {}
    for o in model.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, opsets[d]) for d in sorted(opsets))
    model.producer_name = "modelship"
    model.producer_version = ""
    model.doc_string = ""
    graph.name = name
    onnx.checker.check_model(model)
    roles: list[Output] = (
        [Output(name=LABEL, role="label"), Output(name=PROBABILITIES, role="probabilities")]
        if classification
        else [Output(name=VALUE, role="value")]
    )
    return Converted(model=model, input_mode=mode, features=features, outputs=roles)


def feeds(frame: pd.DataFrame, features: list[Feature], mode: InputMode, tensor_input: str | None) -> dict[str, Any]:
    """onnxruntime inputs for the rows of ``frame`` (columns named as the features)."""
    if InputMode(mode) == InputMode.TENSOR:
        dtype = np.float32 if features and features[0].dtype == "float" else np.float64
        names = [f.name for f in features]
        return {tensor_input or TENSOR_INPUT: frame[names].to_numpy(dtype=dtype)}
    out: dict[str, Any] = {}
    for f in features:
        col = frame[f.name]
        if f.type == FeatureType.CATEGORICAL or f.dtype == "string":
            values = col.astype(object).where(col.notna(), MISSING_CATEGORY)
            out[f.name] = np.array([str(v) for v in values], dtype=object).reshape(-1, 1)
        elif f.dtype == "int64":
            out[f.name] = col.to_numpy(dtype=np.int64).reshape(-1, 1)
        else:
            out[f.name] = col.to_numpy(dtype=np.float32 if f.dtype == "float" else np.float64).reshape(-1, 1)
    return out


def session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


@dataclass
class Prediction:
    labels: npt.NDArray[Any] | None
    probabilities: npt.NDArray[np.float64] | None
    values: npt.NDArray[np.float64] | None


def predict(sess: ort.InferenceSession, inputs: dict[str, Any], outputs: list[Output]) -> Prediction:
    names = [o.name for o in outputs]
    results = dict(zip(names, sess.run(names, inputs), strict=True))
    by_role = {o.role: results[o.name] for o in outputs}
    probs = by_role.get("probabilities")
    vals = by_role.get("value")
    return Prediction(
        labels=np.asarray(by_role["label"]).ravel() if "label" in by_role else None,
        probabilities=np.asarray(probs, dtype=np.float64) if probs is not None else None,
        values=np.asarray(vals, dtype=np.float64).ravel() if vals is not None else None,
    )


@dataclass
class Parity:
    max_delta: float
    label_agreement: float
    mismatches: int


def parity(pipeline: Pipeline, frame: pd.DataFrame, onnx_pred: Prediction, classification: bool) -> Parity:
    """Largest |sklearn - onnxruntime| and label agreement on the same rows."""
    if classification:
        assert onnx_pred.probabilities is not None and onnx_pred.labels is not None
        proba = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
        delta = float(np.max(np.abs(proba - onnx_pred.probabilities))) if len(proba) else 0.0
        labels = np.asarray(pipeline.predict(frame))
        same = np.asarray([str(a) == str(b) for a, b in zip(labels, onnx_pred.labels, strict=True)])
        return Parity(delta, float(same.mean()) if len(same) else 1.0, int((~same).sum()))
    assert onnx_pred.values is not None
    values = np.asarray(pipeline.predict(frame), dtype=np.float64).ravel()
    delta = float(np.max(np.abs(values - onnx_pred.values))) if len(values) else 0.0
    return Parity(delta, 1.0, 0)
