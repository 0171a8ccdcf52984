"""Open Inference Protocol v2 over gRPC: translation between protobuf messages and the data plane.

The gRPC twin of ``v2``: the same checks and messages (datatype, shape,
sizes, missing values), with tensors in ``raw_input_contents`` (``binary``)
or in the typed ``contents`` fields. Answers carry outputs in
``raw_output_contents``, as Triton does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from .batcher import Feed
from .binary import tensor_from_bytes, tensor_to_bytes
from .dataplane import SERVER_NAME, SERVER_VERSION, DataPlane
from .errors import BadRequest
from .model import TensorSpec
from .oip import grpc_predict_v2_pb2 as pb
from .v2 import DATATYPES

# The typed contents field of each datatype (FP16 travels raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def parse(message: type[Any], data: bytes) -> Any:
    try:
        return message.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise BadRequest(f"malformed {message.__name__}: {exc}") from None


def decode_infer(dp: DataPlane, data: bytes) -> tuple[Feed, list[str] | None, str]:
    req = parse(pb.ModelInferRequest, data)
    dp.check_model(req.model_name, req.model_version or None)
    inputs = req.inputs
    if not inputs:
        raise BadRequest("the request has no inputs")
    raw = req.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs")
    limit = dp.settings.max_rows * 4096
    feed: Feed = {}
    for i, tensor in enumerate(inputs):
        name = tensor.name
        if name in feed:
            raise BadRequest(f"input {name!r} appears twice")
        spec = dp.input_spec(name)
        datatype = tensor.datatype
        if datatype != spec.datatype:
            if datatype not in DATATYPES:
                raise BadRequest(f"input {name!r}: unknown datatype {datatype[:40]!r}")
            raise BadRequest(f"input {name!r} has datatype {datatype}; the model expects {spec.datatype}")
        shape = list(tensor.shape)
        for d in shape:
            if d < 0 or d >= 2**31:
                raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
        size = math.prod(shape)
        if size > limit:
            raise BadRequest(f"input {name!r}: shape {shape} is too large")
        where = f"input {name!r}"
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"{where} has contents but the request uses raw_input_contents; send one")
            feed[name] = tensor_from_bytes(raw[i], spec, shape, where, dp.accepts_missing(name))
        else:
            feed[name] = _from_contents(tensor.contents, spec, shape, size, where, dp.accepts_missing(name))
    outputs = None
    if req.outputs:
        outputs = []
        for o in req.outputs:
            if "classification" in o.parameters or "class_count" in o.parameters:
                raise BadRequest(f"output {o.name!r}: the classification extension is not supported")
            outputs.append(o.name)
    return feed, outputs, req.id


def _from_contents(contents: Any, spec: TensorSpec, shape: list[int], size: int, where: str,
                   allow_missing: bool) -> Any:
    field = CONTENTS_FIELD.get(spec.datatype)
    if field is None:
        raise BadRequest(f"{where}: {spec.datatype} travels in raw_input_contents only")
    values = getattr(contents, field)
    if len(values) != size:
        raise BadRequest(f"{where}: shape {shape} needs {size} values, contents.{field} has {len(values)}")
    kind = np.dtype(spec.dtype).kind
    if spec.datatype == "BYTES":
        out = np.empty(size, dtype=object)
        for k, v in enumerate(values):
            try:
                out[k] = v.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"{where}: BYTES element {k} is not UTF-8 text") from None
        return out.reshape(shape)
    if kind == "f":
        arr = np.array(values, dtype=spec.dtype)
        if not allow_missing and arr.size and not np.isfinite(arr).all():
            raise BadRequest(
                f"{where}: contains NaN, infinity or a value outside the {spec.datatype} range; "
                "this model does not accept missing values"
            )
        return arr.reshape(shape)
    if kind in "iu":
        wide = np.array(values, dtype=np.uint64 if kind == "u" else np.int64)
        info = np.iinfo(spec.dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise BadRequest(f"{where}: a value is outside the {spec.datatype} range")
        return wide.astype(spec.dtype).reshape(shape)
    return np.array(values, dtype=np.bool_).reshape(shape)


def encode_infer(dp: DataPlane, result: Feed, request_id: str) -> bytes:
    model = dp.model
    assert model is not None
    resp = pb.ModelInferResponse(model_name=dp.name, model_version=dp.version, id=request_id)
    for name, arr in result.items():
        out = resp.outputs.add()
        out.name = name
        out.datatype = "BYTES" if arr.dtype == object else model.output_by_name[name].datatype
        out.shape.extend(arr.shape)
        resp.raw_output_contents.append(tensor_to_bytes(arr))
    return resp.SerializeToString()  # type: ignore[no-any-return]


def model_metadata(dp: DataPlane) -> bytes:
    doc = dp.model_metadata()
    resp = pb.ModelMetadataResponse(name=doc["name"], versions=doc["versions"], platform=doc["platform"])
    for kind in ("inputs", "outputs"):
        for t in doc[kind]:
            getattr(resp, kind).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return resp.SerializeToString()  # type: ignore[no-any-return]


def server_metadata(dp: DataPlane) -> bytes:
    doc = dp.server_metadata()
    return pb.ServerMetadataResponse(  # type: ignore[no-any-return]
        name=SERVER_NAME, version=SERVER_VERSION, extensions=doc["extensions"]
    ).SerializeToString()
