"""Raw tensor bytes: the OIP v2 binary tensor data extension (REST) and gRPC's raw contents.

A tensor in raw form is its elements flattened in row-major order,
little-endian, no padding; BOOL is one byte per element (0 or 1) and each
BYTES element is a 4-byte little-endian length followed by its bytes. gRPC
carries such blobs in ``raw_input_contents`` / ``raw_output_contents``.

Over REST (Triton's ``binary_tensor_data`` extension) the body is a JSON
inference request of ``Inference-Header-Content-Length`` bytes followed by
the blobs of the inputs whose ``parameters`` hold ``binary_data_size``, in
the order of ``inputs``. Outputs come back the same way when the request asks
(``"binary_data": true`` on an output, or ``"binary_data_output": true`` on
the request): the JSON header lists them with ``binary_data_size`` and no
``data``, and the response's ``Inference-Header-Content-Length`` says where
the blobs start. Every size is checked against the shape and datatype before
a byte is interpreted; a lie is the client's error (400), never a crash.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from .codec import finite
from .errors import BadRequest
from .model import TensorSpec

Array = npt.NDArray[Any]
# Outputs the response carries as blobs: every output (True) or those named.
BinaryOutputs = frozenset[str] | bool
_LENGTH = struct.Struct("<I")
_LITTLE: dict[Any, np.dtype[Any]] = {}
_NATIVE_LITTLE = np.dtype("<f4").isnative
# What the HTTP layer records for a header it could not read (refused with 400 later).
INVALID_HEADER_LENGTH = -2


class Blobs:
    """The binary part of a REST body, handed out input by input in order."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: Any, where: str) -> memoryview:
        if type(size) is not int or size < 0:
            raise BadRequest(f"{where}: binary_data_size must be a non-negative integer")
        end = self._offset + size
        if end > len(self._data):
            raise BadRequest(
                f"{where}: binary_data_size {size} runs past the end of the body "
                f"({len(self._data) - self._offset} bytes of binary data left)"
            )
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    @property
    def left(self) -> int:
        return len(self._data) - self._offset


def parse_header_length(value: bytes) -> int:
    """The ``Inference-Header-Content-Length`` header's value, or 400."""
    text = value.strip()
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(
            f"Inference-Header-Content-Length must be a non-negative integer, got {value[:40]!r}"
        )
    return int(text)


def split_body(body: bytes, header_length: int) -> tuple[bytes, Blobs]:
    """Splits a binary-extension body into its JSON header and its blobs."""
    if header_length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has only {len(body)} bytes"
        )
    if header_length == 0:
        raise BadRequest("Inference-Header-Content-Length is 0: the JSON inference request is missing")
    view = memoryview(body)
    return bytes(view[:header_length]), Blobs(view[header_length:])


def tensor_from_bytes(buf: bytes | memoryview, spec: TensorSpec, shape: list[int], where: str,
                      allow_missing: bool) -> Array:
    """One raw tensor as the typed array the model takes (its datatype already matches ``spec``)."""
    size = math.prod(shape)
    if spec.datatype == "BYTES":
        return _strings_from_bytes(buf, size, where).reshape(shape)
    dtype = _LITTLE.get(spec.dtype)
    if dtype is None:
        dtype = _LITTLE[spec.dtype] = np.dtype(spec.dtype).newbyteorder("<")
    want = size * dtype.itemsize
    if len(buf) != want:
        raise BadRequest(
            f"{where}: shape {shape} of {spec.datatype} needs {want} bytes of raw data, got {len(buf)}"
        )
    if spec.datatype == "BOOL":
        raw = np.frombuffer(buf, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise BadRequest(f"{where}: BOOL raw data must be bytes 0 or 1")
        return raw.view(np.bool_).reshape(shape)
    arr: Array = np.ndarray(shape, dtype=dtype, buffer=buf)  # no copy
    if not _NATIVE_LITTLE:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    elif not arr.flags.aligned:
        arr = arr.copy()
    if dtype.kind == "f" and not allow_missing and want and not finite(arr):
        raise BadRequest(
            f"{where}: contains NaN or infinity; this model does not accept missing values"
        )
    return arr


def _strings_from_bytes(buf: bytes | memoryview, size: int, where: str) -> Array:
    data = bytes(buf)
    out = np.empty(size, dtype=object)
    offset = 0
    end = len(data)
    for i in range(size):
        if offset + 4 > end:
            raise BadRequest(f"{where}: BYTES raw data ends after {i} of {size} elements")
        (n,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + n > end:
            raise BadRequest(f"{where}: BYTES element {i} claims {n} bytes; only {end - offset} are left")
        try:
            out[i] = data[offset : offset + n].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{where}: BYTES element {i} is not UTF-8 text") from None
        offset += n
    if offset != end:
        raise BadRequest(f"{where}: BYTES raw data has {end - offset} bytes beyond its {size} elements")
    return out


def tensor_to_bytes(arr: Array) -> bytes:
    """The raw form of an output array."""
    if arr.dtype == object:
        parts = []
        for v in arr.ravel().tolist():
            b = v.encode("utf-8") if isinstance(v, str) else v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    if not arr.dtype.isnative or arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).tobytes()


def wants_binary(doc_params: Any, output_params: list[Any]) -> BinaryOutputs | None:
    """Which outputs a request wants as blobs: None (all JSON), True (all) or the names.

    ``output_params``: (name, parameters) of each requested output.
    """
    everything = False
    if doc_params is not None:
        if not isinstance(doc_params, dict):
            raise BadRequest("'parameters' must be an object")
        flag = doc_params.get("binary_data_output", False)
        if type(flag) is not bool:
            raise BadRequest("parameters.binary_data_output must be true or false")
        everything = flag
    if not output_params:
        return True if everything else None
    names = set()
    for name, params in output_params:
        flag = everything
        if params is not None:
            if not isinstance(params, dict):
                raise BadRequest(f"output {name!r}: 'parameters' must be an object")
            if params.get("classification", params.get("class_count", 0)):
                raise BadRequest(f"output {name!r}: the classification extension is not supported")
            flag = params.get("binary_data", everything)
            if type(flag) is not bool:
                raise BadRequest(f"output {name!r}: parameters.binary_data must be true or false")
        if flag:
            names.add(name)
    return frozenset(names) if names else None
