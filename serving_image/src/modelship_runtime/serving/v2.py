"""Open Inference Protocol v2 (REST): translation between JSON and the data plane.

With the binary tensor data extension (``binary``) inputs may arrive as raw
blobs after the JSON and outputs may leave that way; the checks are the same.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np
import orjson

from .batcher import Feed
from .binary import (
    INVALID_HEADER_LENGTH,
    BinaryOutputs,
    Blobs,
    split_body,
    tensor_from_bytes,
    tensor_to_bytes,
    wants_binary,
)
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


def decode_request(
    dp: DataPlane, body: bytes, header_length: int = -1
) -> tuple[Feed, list[str] | None, Any, BinaryOutputs | None]:
    """A request body to (feed, requested outputs, id, outputs wanted as blobs).

    ``header_length``: the ``Inference-Header-Content-Length`` header (-1: none).
    """
    blobs: Blobs | None = None
    if header_length != -1:
        if header_length == INVALID_HEADER_LENGTH:
            raise BadRequest("Inference-Header-Content-Length must be a non-negative integer")
        body, blobs = split_body(body, header_length)
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
        size = math.prod(shape)
        if size > dp.settings.max_rows * 4096:
            raise BadRequest(f"input {name!r}: shape {shape} is too large")
        params = tensor.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise BadRequest(f"input {name!r}: 'parameters' must be an object")
            binary_size = params.get("binary_data_size")
            if binary_size is not None:
                where = f"input {name!r}"
                if "data" in tensor:
                    raise BadRequest(f"{where} has both data and binary_data_size; send one")
                if blobs is None:
                    raise BadRequest(
                        f"{where} has binary_data_size but the request has no "
                        "Inference-Header-Content-Length header"
                    )
                feed[name] = tensor_from_bytes(blobs.take(binary_size, where), spec, shape, where,
                                               dp.accepts_missing(name))
                continue
        if "data" not in tensor:
            raise BadRequest(f"input {name!r} has no data")
        columns = dp.columns_of(name)
        arr = coerce(tensor["data"], spec, f"input {name!r}", dp.accepts_missing(name),
                     missing_category=dp.missing_category,
                     columns=columns if columns and shape and shape[-1] == len(columns) else None)
        if arr.size != size:
            raise BadRequest(f"input {name!r}: shape {shape} needs {size} values, data has {arr.size}")
        feed[name] = arr.reshape(shape)
    if blobs is not None and blobs.left:
        raise BadRequest(f"{blobs.left} bytes of binary data follow the inputs' binary_data_size")
    outputs = doc.get("outputs")
    names: list[str] | None = None
    wanted: list[Any] = []
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise BadRequest("'outputs' must be a list of objects with a 'name'")
        names = [o["name"] for o in outputs]
        wanted = [(o["name"], o.get("parameters")) for o in outputs]
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    doc_params = doc.get("parameters")
    binary_out = wants_binary(doc_params, wanted) if doc_params is not None or wanted else None
    return feed, names, request_id, binary_out


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


def encode_binary_response(dp: DataPlane, result: Feed, request_id: Any, binary_out: BinaryOutputs) -> tuple[bytes, int]:
    """The binary extension's response: (body, length of its JSON header)."""
    model = dp.model
    assert model is not None
    outputs = []
    blobs = []
    for name, arr in result.items():
        spec = model.output_by_name[name]
        datatype = "BYTES" if arr.dtype == object else spec.datatype
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary_out is True or (binary_out is not False and name in binary_out):
            blob = tensor_to_bytes(arr)
            blobs.append(blob)
            out["parameters"] = {"binary_data_size": len(blob)}
        elif arr.dtype == object:
            out["data"] = [v if isinstance(v, str) else str(v) for v in arr.ravel().tolist()]
        else:
            out["data"] = np.ascontiguousarray(arr).ravel()
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": dp.name, "model_version": dp.version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=_NUMPY)
    return header + b"".join(blobs), len(header)
