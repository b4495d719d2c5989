#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
import csv
import gzip
import itertools
import math
import re
import struct
import uuid

from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pymc.variational.streaming import (
    ArraySource,
    CSVSource,
    DataLoader,
    IterableDataset,
    ParquetSource,
    Shard,
    array_source,
    csv_source,
    parquet_source,
)

CRITEO_NAMES = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
CRITEO_COLUMNS = [f"I{i}" for i in range(1, 14)] + ["label"]


def read_all(source, dtype=np.float64):
    """Every row of a source, shard after shard, in storage order."""
    blocks = [block for shard in source.shards() for block in source.read_shard(shard, dtype)]
    for block in blocks:
        assert block.dtype == np.dtype(dtype)
        assert block.ndim == 2 and block.shape[1] == len(source.columns)
    return np.concatenate(blocks)


def numeric_table(n, offset=0):
    """A table whose row i is recognisable: a = i, b = i / 8 (exact in float32), c = -i."""
    i = np.arange(offset, offset + n)
    return pa.table({"a": i.astype(np.int64), "b": i / 8.0, "c": (-i).astype(np.float64)})


def table_array(table, columns=None):
    columns = table.column_names if columns is None else columns
    return np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in columns])


def parquet_bytes(table, **kwargs):
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue().to_pybytes()


@pytest.fixture
def memory_root():
    # fsspec's memory filesystem is process-global: give each test its own folder and clean up.
    fs = fsspec.filesystem("memory")
    root = f"/test_sources/{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def parquet_dir(tmp_path):
    """Two parquet parts (7 and 5 rows, row groups of 3) plus files a directory scan must skip."""
    parts = [numeric_table(7), numeric_table(5, offset=7)]
    for k, t in enumerate(parts):
        pq.write_table(t, tmp_path / f"part-{k}.parquet", row_group_size=3)
    # Spark/Hadoop markers, hidden files and non-parquet files are not data.
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / ".part-0.parquet.crc").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not parquet")
    return tmp_path, parts


# ----------------------------------------------------------------------------- parquet


def test_parquet_num_rows_from_row_groups(tmp_path):
    pq.write_table(numeric_table(10), tmp_path / "a.parquet", row_group_size=4)
    pq.write_table(numeric_table(3), tmp_path / "b.parquet", row_group_size=4)
    source = parquet_source(tmp_path)
    assert isinstance(source, ParquetSource)
    # One shard per row group, in file then row-group order.
    assert [s.num_rows for s in source.shards()] == [4, 4, 2, 3]
    assert [s.name.rsplit("/", 1)[-1] for s in source.shards()] == [
        "a.parquet (row group 0)",
        "a.parquet (row group 1)",
        "a.parquet (row group 2)",
        "b.parquet (row group 0)",
    ]
    assert source.num_rows == 13
    assert len(read_all(source)) == 13


def test_parquet_fingerprint_of_a_new_source_and_a_moved_copy(tmp_path_factory, parquet_dir):
    # Content only: a second source over the same files (e.g. in a new process, resuming a
    # checkpoint) and a copy elsewhere give the same fingerprint; other rows do not.
    root, _ = parquet_dir
    fingerprint = parquet_source(root).fingerprint()
    assert parquet_source(root).fingerprint() == fingerprint
    copy = tmp_path_factory.mktemp("copy")
    for f in sorted(root.glob("*.parquet")):
        (copy / f.name).write_bytes(f.read_bytes())
    assert parquet_source(copy).fingerprint() == fingerprint
    first = sorted(copy.glob("*.parquet"))[0]
    table = pq.read_table(first)
    pq.write_table(table.set_column(0, table.column_names[0], pc.negate(table.column(0))), first)
    assert parquet_source(copy).fingerprint() != fingerprint


def test_parquet_num_rows_reads_only_footer(tmp_path):
    # Overwrite every data page with garbage, keeping the footer: the row count must still
    # be known, which proves construction never decodes the data; reading then fails.
    path = tmp_path / "a.parquet"
    pq.write_table(numeric_table(10), path, row_group_size=4)
    raw = path.read_bytes()
    footer_len = struct.unpack("<i", raw[-8:-4])[0]
    footer_start = len(raw) - 8 - footer_len
    path.write_bytes(raw[:4] + b"\xff" * (footer_start - 4) + raw[footer_start:])

    source = parquet_source(path)
    assert source.num_rows == 10
    assert [s.num_rows for s in source.shards()] == [4, 4, 2]
    with pytest.raises(OSError, match=re.escape(f"reading parquet {path} (row group 0) failed")):
        list(source.read_shard(source.shards()[0]))


def test_parquet_skips_empty_row_groups(tmp_path):
    pq.write_table(numeric_table(0), tmp_path / "empty.parquet")
    pq.write_table(numeric_table(2), tmp_path / "full.parquet")
    source = parquet_source(tmp_path)
    assert [s.num_rows for s in source.shards()] == [2]
    np.testing.assert_array_equal(read_all(source), table_array(numeric_table(2)))


@pytest.mark.parametrize("columns", [["c", "a"], ["b"], ["b", "c", "a"]], ids=str)
def test_parquet_column_selection_keeps_requested_order(tmp_path, columns):
    table = numeric_table(6)
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=4)
    source = parquet_source(tmp_path / "a.parquet", columns=columns)
    assert source.columns == columns
    np.testing.assert_array_equal(read_all(source), table_array(table, columns))


@pytest.mark.parametrize(
    "make_path, parts",
    [
        (lambda d: str(d), [0, 1]),
        (lambda d: d, [0, 1]),  # a pathlib.Path
        (lambda d: str(d / "part-*.parquet"), [0, 1]),
        (lambda d: [d / "part-0.parquet", str(d / "part-1.parquet")], [0, 1]),
        # Order of a list is kept; a glob and a file can be mixed.
        (lambda d: [str(d / "part-1.parquet"), str(d / "part-0*")], [1, 0]),
        (lambda d: d / "part-1.parquet", [1]),
    ],
    ids=["directory", "directory-path", "glob", "list", "list-glob-reversed", "single-file"],
)
def test_parquet_path_forms(parquet_dir, make_path, parts):
    root, tables = parquet_dir
    source = parquet_source(make_path(root))
    expected = np.concatenate([table_array(tables[k]) for k in parts])
    assert source.num_rows == len(expected)
    assert [Path(f).name for f in source.files] == [f"part-{k}.parquet" for k in parts]
    np.testing.assert_array_equal(read_all(source), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parquet_read_shard_reproduces_table(tmp_path, dtype):
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "x": rng.normal(size=50),
            "y": rng.normal(size=50),
            "z": rng.integers(-1000, 1000, size=50).astype(np.float64),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=16)
    source = parquet_source(tmp_path / "a.parquet")
    assert source.native_dtype == np.float64
    out = read_all(source, dtype)
    np.testing.assert_array_equal(out, table_array(table).astype(dtype))
    # Iterating the source yields the same rows in float64.
    np.testing.assert_array_equal(np.concatenate(list(source)), table_array(table))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parquet_nulls_become_nan(tmp_path, dtype):
    table = pa.table(
        {
            "f64": pa.array([1.5, None, 3.0, None], pa.float64()),
            "f32": pa.array([None, 2.5, None, 4.0], pa.float32()),
            "i64": pa.array([None, 7, 8, None], pa.int64()),
            "flag": pa.array([True, None, False, True], pa.bool_()),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    nan = np.nan
    expected = np.array(
        [[1.5, nan, nan, 1.0], [nan, 2.5, 7.0, nan], [3.0, nan, 8.0, 0.0], [nan, 4.0, nan, 1.0]],
        dtype=dtype,
    )
    np.testing.assert_array_equal(read_all(parquet_source(tmp_path), dtype), expected)
    # A single float column with nulls goes through the fast tensor path.
    only = parquet_source(tmp_path, columns=["f32"])
    assert only.native_dtype == np.float32
    np.testing.assert_array_equal(read_all(only, dtype), expected[:, [1]])


def test_parquet_mixed_int_and_float_columns(tmp_path):
    table = pa.table(
        {
            "i8": pa.array([-3, 0, 5], pa.int8()),
            "u32": pa.array([0, 4_000_000_000, 7], pa.uint32()),
            "i64": pa.array([2**40, -1, 0], pa.int64()),
            "f32": pa.array([0.25, -1.5, 1e30], pa.float32()),
            "f64": pa.array([1e-300, 2.0, -0.0], pa.float64()),
            "cat": pa.array([1, 2, 1], pa.int32()).dictionary_encode(),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    source = parquet_source(tmp_path / "a.parquet")
    # Column types differ, so there is no single storage dtype to decode in.
    assert source.native_dtype is None
    expected = np.array(
        [
            [-3, 0, 2**40, 0.25, 1e-300, 1],
            [0, 4e9, -1, -1.5, 2.0, 2],
            [5, 7, 0, np.float32(1e30), -0.0, 1],
        ]
    )
    np.testing.assert_array_equal(read_all(source), expected)


def test_parquet_memory_url(memory_root, parquet_dir):
    fs, root = memory_root
    local_root, tables = parquet_dir
    for k, t in enumerate(tables):
        fs.pipe(f"{root}/data/part-{k}.parquet", parquet_bytes(t, row_group_size=3))
    fs.pipe(f"{root}/data/_SUCCESS", b"")

    expected = read_all(parquet_source(local_root))
    for url in [f"memory://{root}/data", f"memory://{root}/data/part-*.parquet"]:
        source = parquet_source(url)
        assert source.num_rows == 12
        assert [s.num_rows for s in source.shards()] == [3, 3, 1, 3, 2]
        # Remote shards are named with their protocol, as the user wrote them.
        assert source.shards()[0].name == f"memory://{root}/data/part-0.parquet (row group 0)"
        np.testing.assert_array_equal(read_all(source), expected)


def test_parquet_native_dtype_with_files_of_different_precision(tmp_path):
    pq.write_table(pa.table({"x": pa.array([0.5], pa.float32())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": pa.array([0.1], pa.float64())}), tmp_path / "b.parquet")
    source = parquet_source(tmp_path)
    np.testing.assert_array_equal(read_all(source), [[0.5], [0.1]])
    loader = DataLoader(source, batch_size=2, shuffle=False, prefetch=0)
    np.testing.assert_array_equal(np.concatenate(list(loader.iter_epoch(0))), [[0.5], [0.1]])


# ----------------------------------------------------------------------------- CSV


def write_text(path, text):
    path.write_bytes(text.encode())
    return path


def test_csv_with_header(tmp_path):
    path = write_text(tmp_path / "a.csv", "a,b,c\n1,2,3\n4,5.5,-6\n")
    source = csv_source(path)
    assert isinstance(source, CSVSource)
    assert source.columns == ["a", "b", "c"]
    assert source.num_rows == 2
    np.testing.assert_array_equal(read_all(source), [[1, 2, 3], [4, 5.5, -6]])


def test_csv_header_replaced_by_column_names(tmp_path):
    # With header=True, column_names renames the columns and the header line is still skipped.
    path = write_text(tmp_path / "a.csv", "a,b\n1,2\n3,4\n")
    source = csv_source(path, header=True, column_names=["x", "y"], columns=["y"])
    assert source.num_rows == 2
    np.testing.assert_array_equal(read_all(source), [[2], [4]])


def test_csv_column_names_alone_mean_no_header_as_in_pandas(tmp_path):
    # pd.read_csv(names=...) keeps the first line as data; so does csv_source(column_names=...).
    path = write_text(tmp_path / "a.csv", "1,2\n3,4\n")
    source = csv_source(path, column_names=["x", "y"])
    assert source.num_rows == 2
    np.testing.assert_array_equal(read_all(source), [[1, 2], [3, 4]])
    # A header line read as data is loud, not a silently lost row.
    headed = csv_source(write_text(tmp_path / "b.csv", "a,b\n1,2\n"), column_names=["x", "y"])
    with pytest.raises(ValueError, match=r"line 1, column 'x'.*invalid value 'a'"):
        read_all(headed)


def test_csv_without_header(tmp_path):
    path = write_text(tmp_path / "a.csv", "1,2,3\n4,5,6\n7,8,9\n")
    named = csv_source(path, header=False, column_names=["a", "b", "c"], columns=["c", "a"])
    assert named.num_rows == 3
    np.testing.assert_array_equal(read_all(named), [[3, 1], [6, 4], [9, 7]])
    # Without names, Arrow's f0, f1, ... are used and the first line is data, not a header.
    anonymous = csv_source(path, header=False)
    assert anonymous.columns == ["f0", "f1", "f2"]
    assert anonymous.num_rows == 3
    np.testing.assert_array_equal(read_all(anonymous), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


@pytest.mark.parametrize("delimiter", ["\t", ";", "|"])
def test_csv_delimiter(tmp_path, delimiter):
    # A comma inside a field shows that the delimiter, not ",", splits the columns.
    text = delimiter.join(["a", "b,c"]) + "\n" + delimiter.join(["1.5", "2"]) + "\n"
    path = write_text(tmp_path / "a.txt", text + delimiter.join(["", "-3"]) + "\n")
    source = csv_source(path, delimiter=delimiter)
    assert source.columns == ["a", "b,c"]
    assert source.num_rows == 2
    # Empty fields are missing values.
    np.testing.assert_array_equal(read_all(source), [[1.5, 2], [np.nan, -3]])


@pytest.mark.parametrize(
    "text, rows",
    [
        ("a\n1\n2\n3\n", 3),
        ("a\n1\n2\n3", 3),  # no trailing newline
        ("a\n1\n\n2\n3\n\n", 3),  # single blank lines are not rows
        ("a\r\n1\r\n2\r\n", 2),
        ("a\n", 0),  # only a header
    ],
    ids=["plain", "no-trailing-newline", "blank-lines", "crlf", "header-only"],
)
def test_csv_num_rows_counted(tmp_path, text, rows):
    path = write_text(tmp_path / "a.csv", text)
    source = csv_source(path)
    assert source.num_rows == rows
    assert sum(len(b) for b in source.read_shard(source.shards()[0])) == rows


@pytest.mark.parametrize(
    "text", ["a\n1\n\n\n2\n", "a\r\n1\r\n\r\n2\r\n"], ids=["two-blank-lines", "crlf-blank"]
)
def test_csv_num_rows_counted_with_unusual_blank_lines(tmp_path, text):
    path = write_text(tmp_path / "a.csv", text)
    source = csv_source(path)
    # The reader itself skips these blank lines: there are 2 rows.
    assert sum(len(b) for b in source.read_shard(source.shards()[0])) == 2
    assert source.num_rows == 2


@pytest.mark.parametrize("block_bytes", [64, 1000, 1 << 22])
def test_csv_rows_with_quoted_line_breaks_as_pandas_writes_them(tmp_path, block_bytes):
    # A text column with a line break in every 10th value: lines are not rows. The count
    # must hold whatever the parser's block size, even when a block ends inside a quote.
    import pandas as pd

    n = 500
    frame = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "note": ["two\nlines, quoted" if i % 10 == 0 else "one" for i in range(n)],
        }
    )
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    assert path.read_text().count("\n") == n + 1 + n // 10
    source = CSVSource(path, columns=["x"], block_bytes=block_bytes)
    assert source.num_rows == n
    np.testing.assert_array_equal(read_all(source)[:, 0], np.arange(n))


def test_csv_num_rows_given_skips_counting(tmp_path):
    # Counting would parse this file to its end and fail at line 52; given counts skip that
    # pass, so the bad line is only met when the rows are read.
    unparsable = write_text(tmp_path / "bad.csv", "x\n" + "1\n" * 50 + "1,2,3\n")
    assert CSVSource(unparsable, num_rows=51, block_bytes=32).num_rows == 51
    with pytest.raises(ValueError, match=r"bad.csv.*Expected 1 columns, got 3"):
        CSVSource(unparsable, block_bytes=32)
    a = write_text(tmp_path / "a.csv", "x\n1\n2\n")
    b = write_text(tmp_path / "b.csv", "x\n3\n")
    # The given counts are trusted as they are (here deliberately not the true ones).
    assert csv_source(a, num_rows=40).num_rows == 40
    source = csv_source([a, b], num_rows=[10, 20])
    assert [s.num_rows for s in source.shards()] == [10, 20]
    assert source.num_rows == 30
    with pytest.raises(ValueError, match="one count per file"):
        csv_source([a, b], num_rows=3)


def test_csv_num_rows_list_must_match_files(tmp_path):
    a = write_text(tmp_path / "a.csv", "x\n1\n2\n")
    b = write_text(tmp_path / "b.csv", "x\n3\n")
    with pytest.raises(
        ValueError, match=r"one count per file \(csv_source reads 2 file\(s\)\), got \[2\]"
    ):
        csv_source([a, b], num_rows=[2])


def test_csv_gzip(tmp_path):
    path = tmp_path / "a.csv.gz"
    with gzip.open(path, "wt", newline="") as fh:
        fh.write("a,b\n1,2\n\n3,\n5,6")
    source = csv_source(path, columns=["b"])
    assert source.num_rows == 3
    np.testing.assert_array_equal(read_all(source), [[2], [np.nan], [6]])


@pytest.mark.parametrize("columns", [["c", "a"], ["b"], ["a", "b", "c"]], ids=str)
def test_csv_column_selection(tmp_path, columns):
    path = write_text(tmp_path / "a.csv", "a,b,c\n1,2,3\n4,5,6\n")
    table = {"a": [1, 4], "b": [2, 5], "c": [3, 6]}
    source = csv_source(path, columns=columns)
    assert source.columns == columns
    assert source.column_names == ["a", "b", "c"]
    np.testing.assert_array_equal(read_all(source), np.column_stack([table[c] for c in columns]))


def test_csv_many_files_and_memory_url(tmp_path, memory_root):
    fs, root = memory_root
    texts = ["a,b\n1,2\n3,4\n", "a,b\n5,6\n"]
    for k, text in enumerate(texts):
        write_text(tmp_path / f"part-{k}.csv", text)
        fs.pipe(f"{root}/part-{k}.csv", text.encode())
    expected = [[1, 2], [3, 4], [5, 6]]
    for path in [
        tmp_path,
        str(tmp_path / "part-*.csv"),
        f"memory://{root}",
        f"memory://{root}/*.csv",
    ]:
        source = csv_source(path)
        # One shard per file, each with its own row count.
        assert [s.num_rows for s in source.shards()] == [2, 1]
        np.testing.assert_array_equal(read_all(source), expected)
    assert csv_source(f"memory://{root}").shards()[0].name == f"memory://{root}/part-0.csv"


def test_csv_block_boundaries(tmp_path):
    # More rows than fit in one parser block: every row is read exactly once.
    n = 5000
    path = write_text(tmp_path / "a.csv", "i,j\n" + "".join(f"{i},{2 * i}\n" for i in range(n)))
    source = CSVSource(path, block_bytes=1 << 12)
    out = read_all(source)
    assert source.num_rows == n
    np.testing.assert_array_equal(out, np.column_stack([np.arange(n), 2 * np.arange(n)]))


# ----------------------------------------------------------------------------- Criteo


@pytest.fixture(scope="module")
def criteo_path(criteo_tsv):
    return criteo_tsv


@pytest.fixture(scope="module")
def criteo_expected(criteo_path):
    """The selected Criteo columns, parsed independently with the csv module."""
    with open(criteo_path, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert {len(r) for r in rows} == {40}
    index = [CRITEO_NAMES.index(c) for c in CRITEO_COLUMNS]
    return np.array([[float(r[j]) if r[j] != "" else math.nan for j in index] for r in rows])


def test_criteo_sample(criteo_path, criteo_expected):
    source = csv_source(
        criteo_path, delimiter="\t", header=False, column_names=CRITEO_NAMES, columns=CRITEO_COLUMNS
    )
    assert source.columns == CRITEO_COLUMNS
    assert source.num_rows == 6435
    out = read_all(source)
    assert out.shape == (6435, 14)

    # Values are integers below 2**53, so sums are exact whatever the summation order.
    np.testing.assert_array_equal(np.nansum(out, axis=0), np.nansum(criteo_expected, axis=0))
    np.testing.assert_array_equal(np.isnan(out).sum(axis=0), np.isnan(criteo_expected).sum(axis=0))
    np.testing.assert_array_equal(out, criteo_expected)
    # Anchors from the data's README and a by-hand count: 1506 clicks (rate 0.2340), the
    # label is never missing and I12 is missing in 4930 rows.
    label, i12 = CRITEO_COLUMNS.index("label"), CRITEO_COLUMNS.index("I12")
    assert np.nansum(out[:, label]) == 1506
    assert np.isnan(out[:, label]).sum() == 0
    assert np.isnan(out[:, i12]).sum() == 4930


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("n, shard_rows", [(10, 3), (9, 3), (10, 100), (1, 1)])
def test_array_source_shards_cover_rows_once(n, shard_rows):
    data = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
    source = array_source(data, shard_rows=shard_rows)
    assert isinstance(source, ArraySource)
    assert source.num_rows == n
    bounds = [s.key for s in source.shards()]
    # Contiguous, non-overlapping slices from 0 to n.
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b[1] == c[0] for b, c in itertools.pairwise(bounds))
    assert [s.num_rows for s in source.shards()] == [b - a for a, b in bounds]
    assert max(s.num_rows for s in source.shards()) == min(shard_rows, n)
    np.testing.assert_array_equal(read_all(source), data)
    np.testing.assert_array_equal(read_all(source, np.float32), data.astype(np.float32))


def test_array_source_dataframe():
    # Non-string column labels become strings.
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], 7: [4, 5, 6], "y": [-1.5, 0.0, 2.5]})
    source = array_source(df, shard_rows=2)
    assert source.columns == ["x", "7", "y"]
    assert [s.num_rows for s in source.shards()] == [2, 1]
    np.testing.assert_array_equal(read_all(source), [[1, 4, -1.5], [2, 5, 0], [3, 6, 2.5]])
    # Given names win over the frame's.
    assert array_source(df, columns=["a", "b", "c"]).columns == ["a", "b", "c"]


def test_array_source_1d():
    source = array_source(np.array([3, 1, 2]))
    assert source.columns == ["x0"]
    np.testing.assert_array_equal(read_all(source), [[3], [1], [2]])


def test_array_source_errors():
    with pytest.raises(
        ValueError, match=re.escape("1-D or 2-D array of rows, got shape (2, 3, 4)")
    ):
        array_source(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="numeric array, got dtype <U1"):
        array_source(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="numeric array, got dtype object"):
        array_source(np.array([[1, None]], dtype=object))
    with pytest.raises(ValueError, match="got 1 column names for an array with 2 columns"):
        array_source(np.zeros((3, 2)), columns=["a"])
    for bad in (0, 1.5):
        with pytest.raises(
            ValueError, match=f"shard_rows must be a positive whole number, got {bad}"
        ):
            array_source(np.zeros((3, 2)), shard_rows=bad)
    with pytest.raises(ValueError, match=re.escape("no columns, shape (3, 0)")):
        array_source(np.zeros((3, 0)))


# ----------------------------------------------------------------------------- custom sources


class ListSource(IterableDataset):
    """A user source: each shard is a list of 2-D arrays, one may hide its size."""

    def __init__(self, blocks, sizes_known=True):
        self.blocks, self.sizes_known = blocks, sizes_known
        self.columns = ["u", "v"]

    def shards(self):
        return [
            Shard(f"list {i}", sum(len(b) for b in blocks) if self.sizes_known else None, i)
            for i, blocks in enumerate(self.blocks)
        ]

    def read_shard(self, shard, dtype=np.float64):
        for block in self.blocks[shard.key]:
            yield np.asarray(block, dtype=dtype)


def test_user_source():
    blocks = [[[[1, 2], [3, 4]], [[5, 6]]], [[[7, 8]]]]
    source = ListSource(blocks)
    assert source.num_rows == 4
    np.testing.assert_array_equal(np.concatenate(list(source)), [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert source.fingerprint() == {
        "source": "ListSource",
        "columns": ["u", "v"],
        "shard_rows": [3, 1],  # content, not names: moved data is the same data
    }
    assert repr(source) == "ListSource(columns=2, shards=2, num_rows=4)"
    # The loader accepts it and sees every row.
    loader = DataLoader(source, batch_size=3, shuffle=False, prefetch=0)
    assert len(loader) == 4
    np.testing.assert_array_equal(
        np.concatenate(list(loader.iter_epoch(0))), [[1, 2], [3, 4], [5, 6], [7, 8]]
    )
    # One shard of unknown size makes the total unknown.
    assert ListSource(blocks, sizes_known=False).num_rows is None


def test_incomplete_user_source_names_itself():
    class Half(IterableDataset):
        columns = ["a"]

    with pytest.raises(NotImplementedError, match=r"Half must implement shards\(\)"):
        Half().shards()
    with pytest.raises(NotImplementedError, match=r"Half must implement read_shard\(\)"):
        next(iter(Half().read_shard(Shard("s", 1))))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make_source", [parquet_source, csv_source], ids=["parquet", "csv"])
def test_missing_path(tmp_path, make_source):
    missing = tmp_path / "nope" / "data.parquet"
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"no such file or directory: {str(missing)!r}")
    ):
        make_source(missing)
    pattern = str(tmp_path / "part-*.parquet")
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"the pattern {pattern!r} matches no file")
    ):
        make_source(pattern)
    with pytest.raises(ValueError, match="empty list of paths"):
        make_source([])


def test_empty_directory(tmp_path):
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / "data.csv").write_text("a\n1\n")
    # Only parquet files count, and markers such as _SUCCESS are skipped.
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"the directory {str(tmp_path)!r} holds no .parquet")
    ):
        parquet_source(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"the directory {str(empty)!r} holds no")
    ):
        csv_source(empty)


def test_unknown_column(tmp_path):
    pq.write_table(numeric_table(2), tmp_path / "a.parquet")
    with pytest.raises(
        KeyError, match=re.escape("has no column 'z'; available columns: ['a', 'b', 'c']")
    ):
        parquet_source(tmp_path, columns=["a", "z"])
    path = write_text(tmp_path / "a.csv", "a,b\n1,2\n")
    with pytest.raises(
        KeyError,
        match=re.escape(f"CSV file {str(path)!r} has no column 'z'; available columns: ['a', 'b']"),
    ):
        csv_source(path, columns=["z"])
    with pytest.raises(
        TypeError, match="columns must be a list of column names, not the string 'a'"
    ):
        parquet_source(tmp_path, columns="a")
    with pytest.raises(ValueError, match="columns lists a column twice"):
        parquet_source(tmp_path, columns=["a", "a"])


def test_column_missing_from_a_later_parquet_file(tmp_path):
    pq.write_table(numeric_table(2), tmp_path / "a.parquet")
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "b.parquet")
    with pytest.raises(
        KeyError, match=re.escape(f"parquet file {str(tmp_path / 'b.parquet')!r} has no column 'b'")
    ):
        parquet_source(tmp_path, columns=["a", "b"])


def test_non_numeric_parquet_column(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["p", "q"]}), path)
    with pytest.raises(
        TypeError, match=re.escape(f"parquet file {str(path)!r}: column 'name' has type string")
    ):
        parquet_source(path)
    # Leaving the column out is the documented way around it.
    np.testing.assert_array_equal(read_all(parquet_source(path, columns=["x"])), [[1], [2]])


def test_corrupt_parquet_file(tmp_path):
    good = tmp_path / "a.parquet"
    pq.write_table(numeric_table(2), good)
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(
        ValueError, match=re.escape(f"parquet file {str(bad)!r} is not a readable parquet file")
    ):
        parquet_source(tmp_path)
    empty = tmp_path / "c.parquet"
    empty.write_bytes(b"")
    with pytest.raises(
        ValueError, match=re.escape(f"parquet file {str(empty)!r} is not a readable parquet file")
    ):
        parquet_source(empty)
