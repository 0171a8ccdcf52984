"""KServe v1 (REST): ``instances`` (lists or objects keyed by feature) to the data plane.

An instance is one row: a list of feature values in the model's order, or an
object keyed by feature name (artifact) or input name (bare model). The answer
is ``{"predictions": [...]}`` (labels or values), plus ``probabilities`` when
the request sets ``"parameters": {"probabilities": true}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from .batcher import Array, Feed
from .codec import coerce
from .dataplane import DataPlane
from .errors import BadRequest
from .model import OnnxModel
from .v2 import parse_json


def decode_request(dp: DataPlane, body: bytes) -> tuple[Feed, bool]:
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise BadRequest("the request must be a JSON object with an 'instances' list")
    instances = doc.get("instances", doc.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list")
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("'parameters' must be an object")
    want_proba = bool((params or {}).get("probabilities", False))
    if len(instances) > dp.settings.max_rows:
        raise BadRequest(f"the request has {len(instances)} instances; the limit is {dp.settings.max_rows}")
    model = dp.serving_model()
    if want_proba and _roles(dp, model)[1] is None:
        raise BadRequest("this model has no probabilities output")
    names = feature_names(dp, model)
    if all(isinstance(i, dict) for i in instances):
        columns = _columns_from_objects(instances, names)
    elif all(isinstance(i, list) for i in instances):
        columns = None
    else:
        raise BadRequest("each instance must be a list of feature values or an object keyed by feature name")
    md = dp.metadata
    if len(model.inputs) == 1 and (md is None or md.input_mode == "tensor"):
        spec = model.inputs[0]
        rows = instances if columns is None else [list(r) for r in zip(*columns, strict=True)]
        width = len(names) if names else (spec.shape[1] if len(spec.shape) > 1 else -1)
        if width > 0:
            for k, r in enumerate(rows):
                if len(r) != width:
                    raise BadRequest(f"instances[{k}] has {len(r)} values; the model takes {width} features")
        arr = coerce(rows, spec, "instances", dp.accepts_missing(spec.name), missing_category=dp.missing_category,
                     columns=names or None)
        if arr.ndim != len(spec.shape):
            raise BadRequest(f"instances form shape {list(arr.shape)}; the model expects rows of shape {list(spec.shape[1:])}")
        return {spec.name: arr}, want_proba
    if columns is None:
        for k, r in enumerate(instances):
            if len(r) != len(names):
                raise BadRequest(f"instances[{k}] has {len(r)} values; the model takes {len(names)} features {names}")
        columns = [list(c) for c in zip(*instances, strict=True)]
    feed: Feed = {}
    for name, values in zip(names, columns, strict=True):
        spec = model.input_by_name[name]
        arr = coerce(values, spec, f"feature {name!r}", dp.accepts_missing(name), missing_category=dp.missing_category)
        feed[name] = arr.reshape(len(instances), *[d if d != -1 else 1 for d in spec.shape[1:]]) if arr.ndim == 1 else arr
    return feed, want_proba


def feature_names(dp: DataPlane, model: OnnxModel) -> list[str]:
    md = dp.metadata
    if md is not None:
        return [f.name for f in md.features]
    if len(model.inputs) == 1:
        return []
    return [s.name for s in model.inputs]


def _columns_from_objects(instances: list[Any], names: list[str]) -> list[list[Any]]:
    if not names:
        raise BadRequest("this model has no feature names (no metadata.json): send each instance as a list")
    known = set(names)
    for k, inst in enumerate(instances):
        if inst.keys() != known:
            unknown = sorted(set(inst) - known)
            missing = [n for n in names if n not in inst]
            parts = []
            if unknown:
                parts.append(f"unknown feature(s) {unknown}")
            if missing:
                parts.append(f"missing feature(s) {missing}")
            raise BadRequest(f"instances[{k}]: " + "; ".join(parts))
    return [[inst[n] for inst in instances] for n in names]


def encode_response(dp: DataPlane, result: Feed, want_proba: bool, request_id: str | None = None) -> bytes:
    model = dp.model
    assert model is not None
    pred_name, proba_name = _roles(dp, model)
    doc: dict[str, Any] = {"predictions": _rows(result[pred_name])}
    if want_proba and proba_name is not None:
        doc["probabilities"] = _rows(result[proba_name])
    if request_id is not None:
        doc["id"] = request_id  # the id labels refer to (also in the x-request-id header)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _roles(dp: DataPlane, model: OnnxModel) -> tuple[str, str | None]:
    md = dp.metadata
    if md is not None:
        roles = {o.role: o.name for o in md.outputs}
        pred = roles.get("label") or roles.get("value") or model.output_names[0]
        return pred, roles.get("probabilities")
    proba = next((s.name for s in model.outputs if s.zipmap or "prob" in s.name.lower()), None)
    pred = next((n for n in model.output_names if n != proba), model.output_names[0])
    return pred, proba


def _rows(arr: Array) -> Any:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.dtype == object:
        return arr.tolist()
    return np.ascontiguousarray(arr)
