"""The small Parquet writer, read back by pyarrow: kinds, nulls, codecs, statistics, metadata."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelship_runtime.groundtruth.parquet import Column, write_table


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


@pytest.mark.parametrize("codec", ["none", "gzip"])
@pytest.mark.parametrize("rows", [1, 7, 8, 9, 1000, 70_000])
def test_round_trip(codec: str, rows: int) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=rows)
    x[::11] = np.nan
    ints = rng.integers(-(2**62), 2**62, size=rows)
    text = [None if i % 5 == 0 else f"é{i}" * (i % 3) for i in range(rows)]
    stamps = 1_700_000_000_000_000 + np.arange(rows, dtype=np.int64) * 1000
    masked = np.arange(rows) % 3 == 0
    table = read(write_table([
        Column("x", "double", x), Column("n", "int64", ints), Column("s", "string", text),
        Column("t", "timestamp", stamps), Column("m", "int64", ints, null=masked),
    ], codec=codec))  # type: ignore[arg-type]
    assert table.schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert not table.schema.field("x").nullable and table.schema.field("m").nullable
    np.testing.assert_array_equal(table.column("x").to_numpy(), x)
    np.testing.assert_array_equal(table.column("n").to_numpy(), ints)
    assert table.column("s").to_pylist() == text
    np.testing.assert_array_equal(table.column("t").cast(pa.int64()).to_numpy(), stamps)
    assert table.column("m").to_pylist() == [None if m else int(v) for v, m in zip(ints, masked, strict=True)]


def test_statistics_and_key_value_metadata() -> None:
    data = write_table([Column("t", "timestamp", np.array([5, 3, 9], dtype=np.int64)),
                        Column("x", "double", np.array([np.nan, -1.5, 2.0]))], metadata={"modelship.revision": "r1"})
    meta = pq.read_metadata(io.BytesIO(data))
    t, x = meta.row_group(0).column(0).statistics, meta.row_group(0).column(1).statistics
    assert t.has_min_max and (t.min.timestamp(), t.max.timestamp()) == (3e-6, 9e-6)
    assert x.has_min_max and (x.min, x.max) == (-1.5, 2.0)  # NaN left out
    assert meta.metadata[b"modelship.revision"] == b"r1" and meta.created_by.startswith("modelship")


def test_the_filters_of_readers_use_the_statistics() -> None:
    data = write_table([Column("t", "timestamp", np.arange(100, dtype=np.int64))])
    table = pq.read_table(io.BytesIO(data), filters=[("t", ">=", pa.scalar(90, pa.timestamp("us", tz="UTC")))])
    assert table.num_rows == 10


@pytest.mark.parametrize(("columns", "error"), [
    ([], "at least one column"),
    ([Column("a", "double", [1.0]), Column("a", "double", [1.0])], "duplicated"),
    ([Column("a", "double", [1.0]), Column("b", "double", [1.0, 2.0])], "has 2 values"),
])
def test_refuses_malformed_tables(columns: list[Column], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        write_table(columns)
