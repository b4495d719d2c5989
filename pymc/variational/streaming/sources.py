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
"""Row sources for streaming variational inference.

A source is an :class:`IterableDataset`: it knows its column names, splits itself into
:class:`Shard` objects (files, row groups, slices) and reads one shard at a time as 2-D
numeric blocks of shape ``(rows, columns)``. The :class:`~pymc.variational.streaming.DataLoader`
shuffles the shard order and batches the blocks; a source never holds more than one block.
"""

from __future__ import annotations

import os
import re
import zlib

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pymc.variational.streaming.retry import RetryPolicy

__all__ = [
    "ArraySource",
    "CSVSource",
    "IterableDataset",
    "ParquetSource",
    "Shard",
    "array_source",
    "csv_source",
    "parquet_source",
]

# Rows decoded per block. Large enough that per-block Python overhead vanishes, small
# enough that a block stays a few MB.
READ_BLOCK_ROWS = 65_536
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Shard:
    """One independently readable piece of a source.

    Parameters
    ----------
    name : str
        Where the rows come from, as shown in error messages (a file, a row group, a slice).
    num_rows : int or None
        Number of rows, when known without reading the data.
    key : object
        Whatever the source needs to read the shard again.
    """

    name: str
    num_rows: int | None
    key: Any = None


class IterableDataset:
    """A stream of rows, read shard by shard as 2-D numeric blocks.

    Subclass it to stream from your own storage: set ``columns`` and implement
    :meth:`shards` and :meth:`read_shard`. Everything else (row counts, shuffling,
    batching, resuming) is derived from those two methods.

    Examples
    --------
    .. code-block:: python

        class NpySource(IterableDataset):
            def __init__(self, files, columns):
                self.files, self.columns = files, columns

            def shards(self):
                return [Shard(f, np.load(f, mmap_mode="r").shape[0], f) for f in self.files]

            def read_shard(self, shard, dtype=np.float64):
                yield np.load(shard.key).astype(dtype, copy=False)
    """

    columns: list[str]
    #: dtype in which the data is stored, when every column shares one; the loader then
    #: decodes in it and casts after shuffling.
    native_dtype: np.dtype | None = None
    #: How transient read errors are retried; the loader resumes a shard where it failed.
    retry: RetryPolicy = RetryPolicy()
    #: Whether a forked worker process may read the shards (False for sources holding
    #: connections that a fork cannot share, such as a Dask client).
    fork_safe: bool = True
    #: Levels of each categorical column, in code order: code ``k`` means ``levels[k]``.
    categories: dict[str, np.ndarray] = {}

    def shards(self) -> list[Shard]:
        """Return the natural shards of the source, in storage order."""
        raise NotImplementedError(f"{type(self).__name__} must implement shards()")

    def read_shard(self, shard: Shard, dtype: np.dtype | type = np.float64) -> Iterator[np.ndarray]:
        """Yield the rows of one shard as 2-D arrays of shape ``(rows, len(columns))``.

        Blocks should already be of ``dtype`` where that saves a copy; the loader casts
        anything else.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement read_shard()")

    def prefetch_hint(self, shards: list[Shard]) -> None:
        """Learn the order in which the loader is about to read ``shards``.

        The loader calls it before each epoch with the epoch's shards in reading order,
        from the first one it actually reads. A source whose reads are slow to start (a
        remote computation) can begin the next few early. The default does nothing.
        """

    @property
    def num_rows(self) -> int | None:
        """Total number of rows, or None when a shard does not know its size."""
        counts = [s.num_rows for s in self.shards()]
        if any(c is None for c in counts):
            return None
        return int(sum(counts))

    def fingerprint(self) -> dict:
        """Describe the data cheaply (shards, row counts, columns), to detect changes."""
        return {
            "source": type(self).__name__,
            "columns": list(self.columns),
            "shards": [[s.name, s.num_rows] for s in self.shards()],
        }

    def __iter__(self) -> Iterator[np.ndarray]:
        for shard in self.shards():
            yield from self.read_shard(shard)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(columns={len(self.columns)}, shards={len(self.shards())}, "
            f"num_rows={self.num_rows})"
        )


# ----------------------------------------------------------------------------- files


def _resolve_files(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    storage_options: dict | None,
    suffixes: tuple[str, ...],
    kind: str,
) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    """Expand a file, directory, glob, list of those, or fsspec URL into sorted file paths."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        raise ValueError(f"{kind}_source got an empty list of paths")
    fs = None
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        p_fs, root = fsspec.core.url_to_fs(p, **(storage_options or {}))
        if fs is None:
            fs = p_fs
        elif type(p_fs) is not type(fs):
            raise ValueError(f"{kind}_source: all paths must be on one filesystem; {p!r} is not")
        try:
            files.extend(_expand(fs, root, p, suffixes, kind))
        except (FileNotFoundError, ValueError):
            raise
        except Exception as err:  # e.g. an HTTP 403 from a listing: name the path
            raise _read_error(err, f"{kind}_source path {p!r}") from err
    return fs, files


def _expand(fs: fsspec.AbstractFileSystem, root: str, p: str, suffixes: tuple[str, ...], kind: str) -> list[str]:
    """The files that one path stands for."""
    files: list[str] = []
    if any(c in root for c in _GLOB_CHARS):
        found = sorted(fs.glob(root))
        if not found:
            raise FileNotFoundError(f"{kind}_source: the pattern {p!r} matches no file")
        files.extend(f for f in found if not fs.isdir(f))
    elif fs.isdir(root):
        found = sorted(
            f
            for f in fs.find(root)
            if not os.path.basename(f).startswith((".", "_"))
            and (not suffixes or f.lower().endswith(suffixes))
        )
        if not found:
            raise FileNotFoundError(
                f"{kind}_source: the directory {p!r} holds no {' or '.join(suffixes)} file"
            )
        files.extend(found)
    elif fs.exists(root):
        files.append(root)
    else:
        raise FileNotFoundError(f"{kind}_source: no such file or directory: {p!r}")
    return files


def _read_error(err: Exception, where: str) -> Exception:
    """A read failure as the error a user can act on, naming what failed."""
    if isinstance(err, FileNotFoundError | PermissionError):
        return type(err)(f"{where}: {err}")
    status = getattr(err, "status", None)
    if status in (401, 403):
        return PermissionError(f"{where}: access refused (HTTP {status}); check the credentials in storage_options")
    if status == 404:
        return FileNotFoundError(f"{where}: not found (HTTP 404)")
    return OSError(f"reading {where} failed: {type(err).__name__}: {err}")


def _fork_safe(fs: fsspec.AbstractFileSystem) -> bool:
    """fsspec's async filesystems (HTTP, S3, GCS, ...) refuse to run in a forked child."""
    return not getattr(fs, "async_impl", False)


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The path as the user would write it (with its protocol when remote)."""
    return fs.unstrip_protocol(path) if not _is_local(fs) else path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _retry_policy(retry: RetryPolicy | int | None) -> RetryPolicy:
    if retry is None:
        return RetryPolicy()
    if isinstance(retry, RetryPolicy):
        return retry
    if _is_count(retry) and retry >= 1:
        return RetryPolicy(tries=int(retry))
    raise TypeError(f"retry must be a RetryPolicy or a number of tries >= 1, got {retry!r}")


def _is_count(n) -> bool:
    return isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0


def _check_numeric(field: pa.Field, where: str) -> None:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise TypeError(
            f"{where}: column {field.name!r} has type {field.type}, but only numeric "
            "(integer, float, boolean) columns can be streamed into a model. Leave it out "
            "with columns=[...]."
        )


def _select_columns(available: list[str], columns: Sequence[str] | None, where: str) -> list[str]:
    if columns is None:
        return list(available)
    if isinstance(columns, str):
        raise TypeError(f"columns must be a list of column names, not the string {columns!r}")
    columns = list(columns)
    missing = [c for c in columns if c not in available]
    if missing:
        raise KeyError(f"{where} has no column {missing[0]!r}; available columns: {available}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns lists a column twice: {columns}")
    return columns


def _resolve_categorical(categorical, columns: list[str], where: str) -> dict[str, list | None]:
    """``{column: given levels or None}`` from a list of names or a dict of levels."""
    if categorical is None:
        return {}
    if isinstance(categorical, str):
        raise TypeError(f"categorical must be a list of column names or a dict of levels, not {categorical!r}")
    spec = dict(categorical) if isinstance(categorical, dict) else dict.fromkeys(categorical)
    for name, levels in spec.items():
        if name not in columns:
            raise KeyError(f"categorical column {name!r} is not among the columns read from {where}: {columns}")
        if levels is not None:
            levels = list(levels)
            if len(set(levels)) != len(levels):
                raise ValueError(f"the levels given for categorical column {name!r} repeat a value")
            spec[name] = levels
    return spec


def _sorted_levels(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by text, still stable
        return sorted(values, key=str)


def encode_categories(batch: pa.RecordBatch, levels: dict[str, pa.Array], where: str) -> pa.RecordBatch:
    """Replace categorical columns by their integer codes (as float64; nulls stay null)."""
    if not levels:
        return batch
    arrays = list(batch.columns)
    for name, value_set in levels.items():
        j = batch.schema.get_field_index(name)
        column = arrays[j]
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.type != value_set.type:
            column = column.cast(value_set.type)
        codes = pc.index_in(column, value_set=value_set)
        if codes.null_count > column.null_count:
            unknown = pc.filter(column, pc.and_(pc.is_null(codes), pc.is_valid(column)))[0].as_py()
            raise ValueError(
                f"{where}: categorical column {name!r} holds the level {unknown!r}, which is not among "
                f"its {len(value_set)} known levels; pass categorical={{{name!r}: [...every level...]}}"
            )
        arrays[j] = codes.cast(pa.float64())
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def record_batch_to_array(batch: pa.RecordBatch, dtype: np.dtype | type) -> np.ndarray:
    """Decode Arrow columns into one C-ordered 2-D array of ``dtype``; nulls become NaN."""
    dtype = np.dtype(dtype)
    cols = batch.columns
    if cols and dtype.kind == "f" and all(c.type == cols[0].type for c in cols):
        if pa.types.is_floating(cols[0].type) or pa.types.is_integer(cols[0].type):
            # One GIL-free call that writes the row-major matrix directly.
            out = np.asarray(batch.to_tensor(null_to_nan=True, row_major=True))
            return out if out.dtype == dtype else out.astype(dtype)
    out = np.empty((batch.num_rows, len(cols)), dtype=dtype)
    for j, col in enumerate(cols):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.null_count and dtype.kind == "f":
            col = col.cast(pa.float64()).fill_null(np.nan)
        out[:, j] = col.to_numpy(zero_copy_only=False)
    return out


# ----------------------------------------------------------------------------- parquet


class ParquetSource(IterableDataset):
    """Parquet files read row group by row group.

    Create it with :func:`parquet_source`.
    """

    def __init__(self, path, columns=None, storage_options=None, retry=None, categorical=None):
        self.retry = _retry_policy(retry)
        self.fs, self.files = self.retry.call(
            lambda: _resolve_files(path, storage_options, (".parquet", ".parq", ".pq"), "parquet"), str(path)
        )
        self.fork_safe = _fork_safe(self.fs)
        self._metadata: list[pq.FileMetaData] = []
        schema = None
        file_types: set[pa.DataType] = set()
        for f in self.files:
            where = f"parquet file {_display(self.fs, f)!r}"
            try:
                metadata = self.retry.call(lambda f=f: self._read_footer(f), where)
            except pa.ArrowException as err:
                raise ValueError(f"{where} is not a readable parquet file: {err}") from err
            except Exception as err:
                raise _read_error(err, where) from err
            file_schema = metadata.schema.to_arrow_schema()
            self._metadata.append(metadata)
            if schema is None:
                schema = file_schema
                self.columns = _select_columns(schema.names, columns, where)
                spec = _resolve_categorical(categorical, self.columns, where)
            for c in self.columns:
                if c not in file_schema.names:
                    raise KeyError(
                        f"{where} has no column {c!r}, which {_display(self.fs, self.files[0])!r} "
                        f"has; available columns: {file_schema.names}"
                    )
                if c not in spec:
                    _check_numeric(file_schema.field(c), where)
            file_types.update(file_schema.field(c).type for c in self.columns)
        types = file_types
        if len(types) == 1 and pa.types.is_floating(next(iter(types))) and not spec:
            self.native_dtype = np.dtype(next(iter(types)).to_pandas_dtype())
        self._levels = self._find_levels(spec)
        self.categories = {name: np.asarray(levels.to_pylist(), dtype=object if pa.types.is_string(levels.type) else None) for name, levels in self._levels.items()}
        self._shards = [
            Shard(f"{_display(self.fs, f)} (row group {rg})", md.row_group(rg).num_rows, (i, rg))
            for i, (f, md) in enumerate(zip(self.files, self._metadata))
            for rg in range(md.num_row_groups)
            if md.row_group(rg).num_rows
        ]

    def _find_levels(self, spec: dict[str, list | None]) -> dict[str, pa.Array]:
        """Levels of the categorical columns: given, or found by one scan of those columns."""
        found: dict[str, set] = {name: set() for name, levels in spec.items() if levels is None}
        if found:
            for i, f in enumerate(self.files):
                where = f"parquet file {_display(self.fs, f)!r}"
                table = self.retry.call(lambda i=i: self._open(i).read(columns=list(found), use_threads=False), where)
                for name in found:
                    found[name].update(pc.unique(table[name].combine_chunks()).to_pylist())
        levels = {}
        for name, given in spec.items():
            values = given if given is not None else _sorted_levels(found[name] - {None})
            levels[name] = pa.array(values)
        return levels

    def _read_footer(self, path: str) -> pq.FileMetaData:
        with self.fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).metadata

    def shards(self) -> list[Shard]:
        return self._shards

    def _open(self, file_index: int) -> pq.ParquetFile:
        f = self.files[file_index]
        md = self._metadata[file_index]
        # Local files go through Arrow's native reader; the footer is reused, not re-read.
        source = f if _is_local(self.fs) else self.fs.open(f, "rb")
        return pq.ParquetFile(source, metadata=md)

    def read_shard(self, shard, dtype=np.float64):
        file_index, rg = shard.key
        try:
            pf = self._open(file_index)
            # One decoding thread: Arrow's pool would compete with the step for the 2nd core,
            # and measured slower (5.3M against 9.0M rows/s on snappy files).
            batches = pf.iter_batches(batch_size=READ_BLOCK_ROWS, row_groups=[rg], columns=self.columns, use_threads=False)
            for rb in batches:
                yield record_batch_to_array(encode_categories(rb, self._levels, shard.name), dtype)
        except pa.ArrowException as err:
            raise OSError(f"reading parquet {shard.name} failed: {err}") from err
        except ValueError:  # our own, already naming the shard (e.g. an unknown level)
            raise
        except Exception as err:
            raise _read_error(err, f"parquet {shard.name}") from err

    def fingerprint(self):
        fp = super().fingerprint()
        fp["files"] = [[_display(self.fs, f), md.num_rows] for f, md in zip(self.files, self._metadata)]
        fp["categories"] = {name: levels.to_pylist() for name, levels in self._levels.items()}
        return fp


def parquet_source(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    columns: Sequence[str] | None = None,
    storage_options: dict | None = None,
    retry: RetryPolicy | int | None = None,
    categorical: Sequence[str] | dict[str, Sequence] | None = None,
) -> ParquetSource:
    """Stream rows from parquet files.

    Only the footers are read at construction, for the schema and the row count. Rows are
    then decoded one row group at a time with :meth:`pyarrow.parquet.ParquetFile.iter_batches`,
    so memory does not depend on the size of the data.

    Parameters
    ----------
    path : str, path-like or list of those
        A file, a directory (every ``*.parquet`` file below it, in sorted order), a glob
        such as ``"data/part-*.parquet"``, a list of any of these, or an fsspec URL such as
        ``"s3://bucket/criteo/"`` or ``"hf://datasets/user/repo/data/"``.
    columns : list of str, optional
        Columns to read, in the order they appear in each row. Defaults to every column.
        Columns must be numeric; nulls are read as NaN.
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs`, e.g. credentials for object storage.
    retry : RetryPolicy or int, optional
        How transient errors (5xx answers, dropped connections, timeouts) are retried;
        an int is a number of tries. Defaults to 4 tries with exponential backoff from
        0.5 s. Missing files and refused permissions fail at once.
    categorical : list of str or dict, optional
        Columns delivered as integer codes ``0 .. n_levels - 1``, e.g. group labels for a
        hierarchical model. The codes are the same in every shard and epoch: the levels
        are sorted, and found by one scan of those columns at construction, or given as a
        dict ``{column: levels}``. ``source.categories[column]`` (also
        ``loader.categories``) lists them in code order. A level missing from the given
        ones raises an error naming it.

    Returns
    -------
    ParquetSource

    Notes
    -----
    Float columns decode about twice as fast when they are written with plain encoding
    (``pyarrow.parquet.write_table(..., use_dictionary=False)``); dictionary encoding only
    helps columns with few distinct values. Row groups are the shards that the loader
    shuffles, so many moderate row groups (about 10^5 rows) shuffle better than one huge one.

    Examples
    --------
    .. code-block:: python

        from pymc.variational.streaming import DataLoader, parquet_source

        source = parquet_source("criteo/", columns=[f"I{i}" for i in range(1, 14)] + ["label"])
        loader = DataLoader(source, batch_size=4096)
        len(loader)  # the number of rows, read from the footers

    Remote stores work through fsspec: object storage, HTTP, or the Hugging Face hub
    (``pip install huggingface_hub``, which registers ``hf://``):

    .. code-block:: python

        source = parquet_source("s3://my-bucket/criteo/", storage_options={"anon": False})
        source = parquet_source("hf://datasets/criteo/CriteoClickLogs/day_0/*.parquet")
        source = parquet_source(
            "hf://datasets/me/private-clicks/data/", storage_options={"token": "hf_..."}
        )
    """
    return ParquetSource(path, columns=columns, storage_options=storage_options, retry=retry, categorical=categorical)


# ----------------------------------------------------------------------------- CSV


def _count_lines(fh, chunk_bytes: int = 1 << 24) -> int:
    """Count the non-empty lines in one pass over the bytes.

    The CSV reader skips empty lines (``""`` or ``"\\r"``), so they are not rows.
    """
    lines = 0
    tail = b"\n"  # what precedes the first byte: a line starts there
    while True:
        chunk = fh.read(chunk_bytes)
        if not chunk:
            break
        lines += chunk.count(b"\n")
        joined = tail + chunk
        if b"\n\n" in joined or b"\n\r\n" in joined:
            # Rare: count the empty lines that end in this chunk, overlapping runs included.
            b = np.frombuffer(joined, dtype=np.uint8)
            nl = b == 10
            t = len(tail)
            lines -= int(np.count_nonzero(nl[t:] & nl[t - 1 : -1]))
            u = max(t, 2)
            lines -= int(np.count_nonzero(nl[u:] & (b[u - 1 : -1] == 13) & nl[u - 2 : -2]))
        tail = joined[-2:]
    if tail[-1:] != b"\n" and tail not in (b"\n\r",):
        lines += 1
    return lines


class CSVSource(IterableDataset):
    """Delimited text files read incrementally by pyarrow.

    Create it with :func:`csv_source`.
    """

    def __init__(
        self,
        path,
        columns=None,
        delimiter=",",
        header=True,
        column_names=None,
        storage_options=None,
        num_rows=None,
        block_bytes=1 << 22,
        retry=None,
        categorical=None,
    ):
        self.retry = _retry_policy(retry)
        self.fs, self.files = self.retry.call(lambda: _resolve_files(path, storage_options, (), "csv"), str(path))
        self.fork_safe = _fork_safe(self.fs)
        self.delimiter = delimiter
        self.header = bool(header)
        self._categorical: set[str] = set()
        self.block_bytes = int(block_bytes)
        first = _display(self.fs, self.files[0])
        if column_names is not None:
            names = list(column_names)
        elif self.header:
            names = self._read_header(self.files[0])
        else:
            names = None
        if names is None:
            with self._open_reader(self.files[0], None, None) as reader:
                names = reader.schema.names
            self._autogenerated = True
        else:
            self._autogenerated = False
        self.column_names = names
        self.columns = _select_columns(names, columns, f"CSV file {first!r}")
        spec = _resolve_categorical(categorical, self.columns, f"CSV file {first!r}")
        self._categorical = set(spec)
        self._levels = self._find_levels(spec)
        self.categories = {
            name: np.asarray(levels.to_pylist(), dtype=object) for name, levels in self._levels.items()
        }
        self._num_rows_given = num_rows
        if num_rows is not None:
            counts = [num_rows] if _is_count(num_rows) else list(num_rows) if isinstance(num_rows, Sequence) and not isinstance(num_rows, str) else None
            if counts is None or len(counts) != len(self.files) or not all(_is_count(n) for n in counts):
                raise ValueError(
                    f"num_rows must give one count per file (csv_source reads {len(self.files)} "
                    f"file(s)), got {num_rows!r}"
                )
            counts = [int(n) for n in counts]
        else:
            counts = [self.retry.call(lambda f=f: self._count_rows(f), _display(self.fs, f)) for f in self.files]
        self._shards = [Shard(_display(self.fs, f), n, i) for i, (f, n) in enumerate(zip(self.files, counts))]

    def _find_levels(self, spec: dict[str, list | None]) -> dict[str, pa.Array]:
        """Levels of the categorical columns: given, or found by one scan of those columns."""
        found: dict[str, set] = {name: set() for name, levels in spec.items() if levels is None}
        names = None if self._autogenerated else self.column_names
        for path in self.files if found else []:
            with self._open_reader(path, names, list(found)) as reader:
                for rb in _batches(reader, _display(self.fs, path), self.column_names):
                    for name in found:
                        found[name].update(pc.unique(rb.column(name)).to_pylist())
        return {
            name: pa.array([str(v) for v in given] if given is not None else _sorted_levels(found[name] - {None}), pa.string())
            for name, given in spec.items()
        }

    def _read_header(self, path):
        with self.fs.open(path, "rb", compression="infer") as fh:
            line = fh.readline().decode("utf-8").rstrip("\r\n")
        if not line:
            raise ValueError(f"CSV file {_display(self.fs, path)!r} is empty; expected a header line")
        return [n.strip().strip('"') for n in line.split(self.delimiter)]

    def _count_rows(self, path):
        with self.fs.open(path, "rb", compression="infer") as fh:
            n = _count_lines(fh)
        return max(n - int(self.header), 0)

    def _open_reader(self, path, names, columns):
        fh = self.fs.open(path, "rb", compression="infer")
        read_options = pa_csv.ReadOptions(
            column_names=names,
            autogenerate_column_names=names is None and not self.header,
            skip_rows=1 if (self.header and names is not None) else 0,
            block_size=self.block_bytes,
            use_threads=False,
        )
        # Categorical columns are text, whatever they look like; the rest must be numbers.
        types = {c: pa.string() if c in self._categorical else pa.float64() for c in columns or []}
        convert_options = pa_csv.ConvertOptions(include_columns=columns, column_types=types or None)
        parse_options = pa_csv.ParseOptions(delimiter=self.delimiter)
        try:
            reader = pa_csv.open_csv(
                fh, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
        except pa.ArrowException as err:  # the first block is parsed on opening
            fh.close()
            raise ValueError(_csv_error(err, _display(self.fs, path), getattr(self, "column_names", None))) from err
        return _ClosingReader(reader, fh)

    def read_shard(self, shard, dtype=np.float64):
        path = self.files[shard.key]
        names = None if self._autogenerated else self.column_names
        try:
            with self._open_reader(path, names, self.columns) as reader:
                for rb in _batches(reader, shard.name, self.column_names):
                    yield record_batch_to_array(encode_categories(rb, self._levels, shard.name), dtype)
        except ValueError:  # already names the file, line and column
            raise
        except Exception as err:
            raise _read_error(err, f"CSV file {shard.name!r}") from err

    def fingerprint(self):
        fp = super().fingerprint()
        fp["files"] = [[s.name, s.num_rows] for s in self._shards]
        fp["categories"] = {name: levels.to_pylist() for name, levels in self._levels.items()}
        return fp

    def shards(self):
        return self._shards


_CSV_COLUMN = re.compile(r"In CSV column #(\d+): Row #(\d+): (.*)", re.DOTALL)


def _batches(reader, where: str, column_names: list[str] | None = None):
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowException as err:
            raise ValueError(_csv_error(err, where, column_names)) from err


def _csv_error(err: Exception, where: str, column_names: list[str] | None) -> str:
    """pyarrow's CSV message with the column named rather than numbered."""
    match = _CSV_COLUMN.search(str(err))
    if match is None or column_names is None or int(match[1]) >= len(column_names):
        return f"CSV file {where!r}: {err}"
    column = column_names[int(match[1])]
    return (
        f"CSV file {where!r}, line {match[2]}, column {column!r}: {match[3]}. Every selected "
        "column must hold numbers; read text columns as categorical=[...] or leave them out "
        "with columns=[...]"
    )


class _ClosingReader:
    def __init__(self, reader, fh):
        self.reader, self.fh = reader, fh
        self.schema = reader.schema

    def read_next_batch(self):
        return self.reader.read_next_batch()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def csv_source(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
    header: bool = True,
    column_names: Sequence[str] | None = None,
    storage_options: dict | None = None,
    num_rows: int | Sequence[int] | None = None,
    retry: RetryPolicy | int | None = None,
    categorical: Sequence[str] | dict[str, Sequence] | None = None,
) -> CSVSource:
    """Stream rows from CSV or other delimited text files.

    Each file is parsed incrementally by :func:`pyarrow.csv.open_csv`, a few MB at a time.
    Compressed files (``.gz``, ``.bz2``, ...) are decompressed on the fly.

    Parameters
    ----------
    path : str, path-like or list of those
        A file, a directory, a glob, a list of these, or an fsspec URL.
    columns : list of str, optional
        Columns to read, in row order. Defaults to every column. Every selected column is
        parsed as a float; empty fields become NaN.
    delimiter : str, default ","
        Field separator, e.g. ``"\\t"`` for TSV.
    header : bool, default True
        Whether the first line of each file holds the column names.
    column_names : list of str, optional
        Names for the columns. Required to select columns by name in a file without a
        header; with ``header=True`` it replaces the names in the header.
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs`.
    num_rows : int or list of int, optional
        Rows per file, when known. Otherwise they are counted by one fast pass over the
        bytes at construction (about 1 GB/s on local disk).
    retry : RetryPolicy or int, optional
        How transient read errors are retried, as in :func:`parquet_source`.
    categorical : list of str or dict, optional
        Columns read as text and delivered as integer codes, as in :func:`parquet_source`;
        given levels are compared as text.

    Returns
    -------
    CSVSource

    Examples
    --------
    Criteo's click log is tab-separated, without a header:

    .. code-block:: python

        names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
        source = csv_source(
            "criteo_dac_sample.tsv",
            delimiter="\\t",
            header=False,
            column_names=names,
            columns=[f"I{i}" for i in range(1, 14)] + ["label"],
        )
    """
    return CSVSource(
        path,
        columns=columns,
        delimiter=delimiter,
        header=header,
        column_names=column_names,
        storage_options=storage_options,
        num_rows=num_rows,
        retry=retry,
        categorical=categorical,
    )


# ----------------------------------------------------------------------------- arrays


class ArraySource(IterableDataset):
    """An in-memory array served in slices of ``shard_rows`` rows.

    Create it with :func:`array_source`.
    """

    def __init__(self, array, columns=None, shard_rows=READ_BLOCK_ROWS):
        if hasattr(array, "columns") and hasattr(array, "to_numpy"):  # a pandas DataFrame
            columns = list(map(str, array.columns)) if columns is None else columns
            array = array.to_numpy()
            if array.dtype == object:  # mixed column types, e.g. float and bool
                try:
                    array = array.astype(np.float64)
                except (TypeError, ValueError) as err:
                    raise TypeError(f"array_source needs numeric DataFrame columns: {err}") from err
        array = np.asarray(array)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(
                f"array_source expects a 1-D or 2-D array of rows, got shape {array.shape}; "
                "reshape it to (rows, columns) and use the DataLoader's sample_shape"
            )
        if array.dtype.kind not in "biuf":
            raise TypeError(f"array_source expects a numeric array, got dtype {array.dtype}")
        if shard_rows <= 0:
            raise ValueError(f"shard_rows must be positive, got {shard_rows}")
        self.array = array
        self.columns = list(columns) if columns is not None else [f"x{j}" for j in range(array.shape[1])]
        if len(self.columns) != array.shape[1]:
            raise ValueError(
                f"array_source got {len(self.columns)} column names for an array with "
                f"{array.shape[1]} columns"
            )
        n = array.shape[0]
        self._shards = [
            Shard(f"array rows {a}:{min(a + shard_rows, n)}", min(a + shard_rows, n) - a, (a, min(a + shard_rows, n)))
            for a in range(0, n, int(shard_rows))
        ]

    def shards(self):
        return self._shards

    def read_shard(self, shard, dtype=np.float64):
        a, b = shard.key
        yield self.array[a:b].astype(dtype, copy=False)

    def fingerprint(self):
        fp = super().fingerprint()
        step = max(1, self.array.shape[0] // 1000)
        fp["checksum"] = zlib.crc32(np.ascontiguousarray(self.array[::step]).tobytes())
        return fp


def array_source(array, columns: Sequence[str] | None = None, shard_rows: int = READ_BLOCK_ROWS) -> ArraySource:
    """Serve rows from an in-memory array, for small data and tests.

    Parameters
    ----------
    array : array_like or pandas.DataFrame
        A 2-D array of shape ``(rows, columns)``; a 1-D array is one column.
    columns : list of str, optional
        Column names. Defaults to the DataFrame's columns, or ``x0, x1, ...``.
    shard_rows : int, default 65536
        Rows per shard; the loader shuffles the order of these slices each epoch.

    Returns
    -------
    ArraySource

    Examples
    --------
    .. code-block:: python

        import numpy as np
        from pymc.variational.streaming import DataLoader, array_source

        loader = DataLoader(array_source(np.random.normal(size=(10_000, 3))), batch_size=256)
        len(loader)  # 10000
    """
    return ArraySource(array, columns=columns, shard_rows=shard_rows)
