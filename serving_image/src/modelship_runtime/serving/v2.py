"""Open Inference Protocol v2 (REST): translation between JSON and the data plane."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np
import orjson

from .batcher import Feed
from .codec import coerce
from .dataplane import DataPlane
from .errors import BadRequest

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
DATATYPES = frozenset(
    ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]
)


def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request has no body; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def decode_request(dp: DataPlane, body: bytes) -> tuple[Feed, list[str] | None, Any]:
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise BadRequest("the request must be a JSON object with an 'inputs' list")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    feed: Feed = {}
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}].name must be a string")
        if name in feed:
            raise BadRequest(f"input {name!r} appears twice")
        spec = dp.input_spec(name)
        datatype = tensor.get("datatype")
        if datatype != spec.datatype:
            if datatype not in DATATYPES:
                raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
            raise BadRequest(f"input {name!r} has datatype {datatype}; the model expects {spec.datatype}")
        shape = tensor.get("shape")
        if not _valid_shape(shape):
            raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
        if "data" not in tensor:
            raise BadRequest(f"input {name!r} has no data")
        if isinstance(tensor.get("parameters"), dict) and tensor["parameters"].get("binary_data_size") is not None:
            raise BadRequest("binary tensor data is not supported; send data as JSON")
        size = math.prod(shape)
        if size > dp.settings.max_rows * 4096:
            raise BadRequest(f"input {name!r}: shape {shape} is too large")
        columns = dp.columns_of(name)
        arr = coerce(tensor["data"], spec, f"input {name!r}", dp.accepts_missing(name),
                     missing_category=dp.missing_category,
                     columns=columns if columns and shape and shape[-1] == len(columns) else None)
        if arr.size != size:
            raise BadRequest(f"input {name!r}: shape {shape} needs {size} values, data has {arr.size}")
        feed[name] = arr.reshape(shape)
    outputs = doc.get("outputs")
    names: list[str] | None = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise BadRequest("'outputs' must be a list of objects with a 'name'")
        names = [o["name"] for o in outputs]
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    return feed, names, request_id


def _valid_shape(shape: Any) -> TypeGuard[list[int]]:
    if type(shape) is not list:
        return False
    for d in shape:  # noqa: SIM110  (hot path: a loop beats a generator)
        if type(d) is not int or d < 0 or d >= 2**31:
            return False
    return True


def encode_response(dp: DataPlane, result: Feed, request_id: Any) -> bytes:
    model = dp.model
    assert model is not None
    outputs = []
    for name, arr in result.items():
        spec = model.output_by_name[name]
        data: Any
        if arr.dtype == object:
            data = [v if isinstance(v, str) else str(v) for v in arr.ravel().tolist()]
            datatype = "BYTES"
        else:
            data = np.ascontiguousarray(arr).ravel()
            datatype = spec.datatype
        outputs.append({"name": name, "datatype": datatype, "shape": list(arr.shape), "data": data})
    doc: dict[str, Any] = {"model_name": dp.name, "model_version": dp.version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = outputs
    return orjson.dumps(doc, option=_NUMPY)
