"""A small Parquet writer for flat tables, in numpy and the standard library.

The serving image writes its prediction log as Parquet without pyarrow
(170 MB installed, twice onnxruntime): a file is one row group of flat
columns; a column chunk is one or more data pages (format v1) in PLAIN
encoding, uncompressed or GZIP (zlib). ``encode_page`` encodes a page on its
own, so a server can encode a few hundred rows at a time as they come and
``write_pages`` only strings the pages together with a footer. The footer is
Thrift compact protocol, written by the few lines below.

Column kinds: ``double`` (NaN stays NaN), ``int64``, ``string`` (UTF-8) and
``timestamp`` (int64 microseconds since the epoch, UTC). Any column may hold
nulls (``None`` in a string column, a mask for the others); those are
OPTIONAL columns with RLE/bit-packed definition levels. ``double`` and
``int64`` and ``timestamp`` chunks carry min/max statistics, so readers can
skip a segment by time. pyarrow, DuckDB and Spark read the files; the tests
read every kind back with pyarrow.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

MAGIC = b"PAR1"
CREATED_BY = "modelship parquet writer 1"

Kind = Literal["double", "int64", "string", "timestamp"]
Codec = Literal["none", "gzip"]

# parquet.thrift enums
_TYPE = {"double": 5, "int64": 2, "string": 6, "timestamp": 2}  # DOUBLE, INT64, BYTE_ARRAY, INT64
_CONVERTED = {"string": 0, "timestamp": 10}  # UTF8, TIMESTAMP_MICROS
_CODEC = {"none": 0, "gzip": 2}
_PLAIN, _RLE = 0, 3
_REQUIRED, _OPTIONAL = 0, 1

# Thrift compact protocol type ids
_T_TRUE, _T_FALSE, _T_I32, _T_I64, _T_BINARY, _T_LIST, _T_STRUCT = 1, 2, 5, 6, 8, 9, 12


@dataclass(frozen=True)
class Column:
    """One column: a name, a kind, the values and (optionally) which are null."""

    name: str
    kind: Kind
    values: npt.NDArray[Any] | Sequence[Any]
    null: npt.NDArray[np.bool_] | None = None


# --- Thrift compact protocol ---------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


class _Struct:
    """Writes one Thrift struct's fields in increasing id order."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.last = 0

    def _header(self, fid: int, ttype: int) -> None:
        delta = fid - self.last
        if 0 < delta <= 15:
            self.buf.append((delta << 4) | ttype)
        else:
            self.buf.append(ttype)
            self.buf += _varint(_zigzag(fid))
        self.last = fid

    def i32(self, fid: int, value: int) -> _Struct:
        self._header(fid, _T_I32)
        self.buf += _varint(_zigzag(value))
        return self

    def i64(self, fid: int, value: int) -> _Struct:
        self._header(fid, _T_I64)
        self.buf += _varint(_zigzag(value))
        return self

    def boolean(self, fid: int, value: bool) -> _Struct:
        self._header(fid, _T_TRUE if value else _T_FALSE)
        return self

    def binary(self, fid: int, value: bytes | str) -> _Struct:
        data = value.encode() if isinstance(value, str) else value
        self._header(fid, _T_BINARY)
        self.buf += _varint(len(data)) + data
        return self

    def struct(self, fid: int, value: _Struct) -> _Struct:
        self._header(fid, _T_STRUCT)
        self.buf += value.end()
        return self

    def list_(self, fid: int, etype: int, items: Sequence[bytes]) -> _Struct:
        """``items`` already encoded (structs with their stop byte, varints, or length-prefixed binaries)."""
        self._header(fid, _T_LIST)
        n = len(items)
        self.buf += bytes([(n << 4) | etype]) if n < 15 else bytes([0xF0 | etype]) + _varint(n)
        for item in items:
            self.buf += item
        return self

    def end(self) -> bytes:
        return bytes(self.buf) + b"\x00"


def _i32_item(value: int) -> bytes:
    return _varint(_zigzag(value))


def _binary_item(value: str) -> bytes:
    data = value.encode()
    return _varint(len(data)) + data


# --- encoding -------------------------------------------------------------------


def _definition_levels(present: npt.NDArray[np.bool_]) -> bytes:
    """RLE/bit-packed hybrid, bit width 1, one bit-packed run, with its 4-byte length prefix."""
    n = present.size
    groups = (n + 7) // 8
    packed = np.packbits(present.astype(np.uint8), bitorder="little").tobytes()
    packed += b"\x00" * (groups - len(packed))
    body = _varint((groups << 1) | 1) + packed
    return struct.pack("<I", len(body)) + body


def _plain_strings(values: Sequence[Any]) -> bytes:
    """PLAIN BYTE_ARRAY: a 4-byte little-endian length before each UTF-8 value.

    Vectorised: the writer runs in a thread of the server, and every
    microsecond it holds the GIL per row is taken from requests.
    """
    n = len(values)
    if n == 0:
        return b""
    first = values[0]
    if isinstance(first, str) and values.count(first) == n:  # a constant column (revision, version)
        e = first.encode()
        return (struct.pack("<I", len(e)) + e) * n
    encoded = [v.encode() if isinstance(v, str) else str(v).encode() for v in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    out = np.empty(4 * n + blob.size, dtype=np.uint8)
    starts = np.arange(n, dtype=np.int64) * 4
    starts[1:] += np.cumsum(lengths)[:-1]
    prefix = (starts[:, None] + np.arange(4)).ravel()
    out[prefix] = lengths.astype("<u4").view(np.uint8)
    body = np.ones(out.size, dtype=bool)
    body[prefix] = False
    out[body] = blob
    return out.tobytes()


def _plain(kind: Kind, values: Any) -> tuple[bytes, float | int | None, float | int | None]:
    """PLAIN bytes of the non-null values, and their min/max for statistics."""
    if kind == "string":
        return _plain_strings(values), None, None
    dtype = np.dtype("<f8") if kind == "double" else np.dtype("<i8")
    arr = np.ascontiguousarray(np.asarray(values, dtype=dtype))
    lo = hi = None
    if arr.size:
        finite = arr[~np.isnan(arr)] if kind == "double" else arr
        if finite.size:
            lo, hi = finite.min().item(), finite.max().item()
    return arr.tobytes(), lo, hi


@dataclass(frozen=True)
class Page:
    """One encoded data page of one column (header and body), with what its column chunk needs."""

    name: str
    kind: Kind
    optional: bool
    codec: Codec
    data: bytes  # page header + (compressed) body
    values: int
    uncompressed: int  # header + uncompressed body
    nulls: int
    lo: float | int | None
    hi: float | int | None


def encode_page(col: Column, *, codec: Codec = "none", level: int = 1, optional: bool | None = None) -> Page:
    """A data page (format v1, PLAIN) of ``col``. ``optional``: the column's schema, when the caller
    fixes it for every page (pages of one column must agree); by default, whether it has nulls."""
    rows = len(col.values)
    null = col.null
    values: Any
    if col.kind == "string":
        values = col.values if isinstance(col.values, list) else list(col.values)
        none = np.fromiter((v is None for v in values), dtype=bool, count=rows)
        null = none if null is None else (null | none)
    else:
        values = np.asarray(col.values)
    has_nulls = null is not None and bool(null.any())
    if optional is None:
        optional = has_nulls
    elif has_nulls and not optional:
        raise ValueError(f"column {col.name!r} has nulls but was declared required")
    nulls = 0
    if optional:
        present = ~null if null is not None else np.ones(rows, dtype=bool)
        nulls = int(rows - present.sum())
        if col.kind == "string":
            kept: Any = [v for v, p in zip(values, present.tolist(), strict=True) if p] if nulls else values
        else:
            kept = values[present] if nulls else values
        levels = _definition_levels(present)
    else:
        kept, levels = values, b""
    body, lo, hi = _plain(col.kind, kept)
    raw = levels + body
    data = zlib.compress(raw, level, wbits=31) if codec == "gzip" else raw
    header = _Struct().i32(1, 0).i32(2, len(raw)).i32(3, len(data)).struct(
        5, _Struct().i32(1, rows).i32(2, _PLAIN).i32(3, _RLE).i32(4, _RLE)).end()
    return Page(col.name, col.kind, optional, codec, header + data, rows, len(header) + len(raw), nulls, lo, hi)


def _stat_bytes(kind: Kind, value: float | int) -> bytes:
    return struct.pack("<d", value) if kind == "double" else struct.pack("<q", int(value))


def write_pages(columns: Sequence[Sequence[Page]], *, metadata: Mapping[str, str] | None = None) -> bytes:
    """A Parquet file of one row group whose column chunks are the given pages, in order.

    ``columns[j]`` are column j's pages (same name, kind and schema); every
    column must hold the same number of values.
    """
    if not columns or not all(columns):
        raise ValueError("a Parquet file needs at least one column, each with a page")
    names = [pages[0].name for pages in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated column names: {names}")
    rows = sum(p.values for p in columns[0])
    out = bytearray(MAGIC)
    chunks: list[bytes] = []
    schema = [_Struct().binary(4, "schema").i32(5, len(columns)).end()]
    total = 0
    for pages in columns:
        first = pages[0]
        if any(p.name != first.name or p.kind != first.kind or p.optional != first.optional
               or p.codec != first.codec for p in pages):
            raise ValueError(f"the pages of column {first.name!r} disagree on name, kind, schema or codec")
        values = sum(p.values for p in pages)
        if values != rows:
            raise ValueError(f"column {first.name!r} has {values} values, expected {rows}")
        offset = len(out)
        for p in pages:
            out += p.data
        size = len(out) - offset
        uncompressed = sum(p.uncompressed for p in pages)
        total += uncompressed
        meta = (_Struct().i32(1, _TYPE[first.kind]).list_(2, _T_I32, [_i32_item(_PLAIN), _i32_item(_RLE)])
                .list_(3, _T_BINARY, [_binary_item(first.name)]).i32(4, _CODEC[first.codec]).i64(5, values)
                .i64(6, uncompressed).i64(7, size).i64(9, offset))
        los = [p.lo for p in pages if p.lo is not None]
        his = [p.hi for p in pages if p.hi is not None]
        if los and his:
            meta.struct(12, _Struct().i64(3, sum(p.nulls for p in pages))
                        .binary(5, _stat_bytes(first.kind, max(his))).binary(6, _stat_bytes(first.kind, min(los))))
        chunks.append(_Struct().i64(2, offset).struct(3, meta).end())
        s = _Struct().i32(1, _TYPE[first.kind]).i32(3, _OPTIONAL if first.optional else _REQUIRED).binary(4, first.name)
        if first.kind in _CONVERTED:
            s.i32(6, _CONVERTED[first.kind])
        schema.append(s.end())
    row_group = _Struct().list_(1, _T_STRUCT, chunks).i64(2, total).i64(3, rows).end()
    footer = _Struct().i32(1, 1).list_(2, _T_STRUCT, schema).i64(3, rows).list_(4, _T_STRUCT, [row_group])
    if metadata:
        pairs = [_Struct().binary(1, k).binary(2, v).end() for k, v in metadata.items()]
        footer.list_(5, _T_STRUCT, pairs)
    footer.binary(6, CREATED_BY)
    # Readers trust min_value/max_value only with a column order (TYPE_ORDER) per column.
    type_order = _Struct().struct(1, _Struct()).end()
    footer.list_(7, _T_STRUCT, [type_order] * len(columns))
    encoded = footer.end()
    out += encoded + struct.pack("<I", len(encoded)) + MAGIC
    return bytes(out)


def write_table(
    columns: Sequence[Column],
    *,
    codec: Codec = "gzip",
    level: int = 1,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A Parquet file holding ``columns`` (equal lengths) as one row group, one page per column."""
    if not columns:
        raise ValueError("a Parquet file needs at least one column")
    rows = len(columns[0].values)
    for col in columns:
        if len(col.values) != rows:
            raise ValueError(f"column {col.name!r} has {len(col.values)} values, expected {rows}")
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated column names: {names}")
    return write_pages([[encode_page(c, codec=codec, level=level)] for c in columns], metadata=metadata)
