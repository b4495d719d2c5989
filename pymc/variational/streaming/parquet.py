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
"""Parquet files streamed row group by row group: :func:`parquet_source`."""

from __future__ import annotations

import hashlib
import json
import os

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pymc.variational.streaming.arrow import (
    check_numeric,
    encode_categories,
    level_array,
    record_batch_to_array,
    resolve_categorical,
    sorted_levels,
)
from pymc.variational.streaming.datasets import (
    READ_BLOCK_ROWS,
    IterableDataset,
    Shard,
    select_columns,
)
from pymc.variational.streaming.files import (
    display_path,
    file_version,
    is_fork_safe,
    is_hub,
    is_index_page,
    is_local,
    resolve_files,
)
from pymc.variational.streaming.read_errors import is_own_error, read_error
from pymc.variational.streaming.redaction import redact
from pymc.variational.streaming.retry import RetryPolicy, as_retry_policy
from pymc.variational.streaming.shutdown import GuardedFile

__all__ = ["ParquetSource", "parquet_source"]

SUFFIXES = (".parquet", ".parq", ".pq")


def _footer_digest(metadata: pq.FileMetaData) -> str:
    """A digest of a file's footer: schema, row groups, sizes and column statistics. It
    changes with the content and not with the file's name or place (nor with the Python
    object: ``str(metadata.schema)`` names its memory address, so the schema is described
    by its Arrow form)."""
    schema = metadata.schema.to_arrow_schema().to_string(show_schema_metadata=False)
    described = {"schema": schema, "footer": metadata.to_dict()}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[
        :32
    ]


def _pandas_index(schema: pa.Schema) -> set[str]:
    """Columns that hold the index pandas' ``to_parquet`` stored (``__index_level_0__``)."""
    try:
        index = (schema.pandas_metadata or {}).get("index_columns", [])
    except (ValueError, TypeError):  # metadata not written by pandas, or not JSON
        return set()
    return {name for name in index if isinstance(name, str)}


class ParquetSource(IterableDataset):
    """Parquet files read row group by row group.

    Create it with :func:`parquet_source`.
    """

    # The fingerprint digests every footer: schema, sizes and column statistics.
    cacheable = True

    def __init__(self, path, columns=None, storage_options=None, retry=None, categorical=None):
        self.retry = as_retry_policy(retry)
        self.fs, self.files, self.commits = self.retry.call_named(
            lambda: resolve_files(path, storage_options, SUFFIXES, "parquet"),
            f"parquet_source({redact(str(path))!r})",
            own=(FileNotFoundError, NotADirectoryError, ValueError, TypeError, KeyError),
        )
        self.fork_safe = is_fork_safe(self.fs)
        if retry is None and is_hub(self.fs):
            # huggingface_hub retries each request itself, for about 23 s: one more try
            # of ours is enough (4 would stack to 90 s on a file that keeps failing).
            self.retry = RetryPolicy(tries=2)
        self.names = [display_path(self.fs, f) for f in self.files]
        self.metadata: list[pq.FileMetaData] = []
        self.sizes: list[int] = []
        self.versions: list[str | None] = []
        spec: dict = {}
        file_types: set[pa.DataType] = set()
        for f, name in zip(self.files, self.names):
            where = f"parquet file {name!r}"
            failure = None
            try:
                metadata, size, version = self.retry.call(lambda f=f: self._read_footer(f), where)
            except pa.ArrowException as err:
                hint = _directory_hint(self.fs, f, name)
                failure = ValueError(redact(f"{where} is not a readable parquet file: {err}{hint}"))
            except Exception as err:
                failure = read_error(err, where)
            if failure is not None:
                raise failure
            schema = metadata.schema.to_arrow_schema()
            if not self.metadata:
                names = schema.names
                if columns is None:  # pandas' stored index is not data (pd.read_parquet)
                    names = [n for n in names if n not in _pandas_index(schema)]
                self.columns = select_columns(names, columns, where)
                spec = resolve_categorical(categorical, self.columns, where)
            self.metadata.append(metadata)
            self.sizes.append(size)
            self.versions.append(version)
            for c in self.columns:
                if c not in schema.names:
                    raise KeyError(
                        f"{where} has no column {c!r}, which {self.names[0]!r} has; "
                        f"available columns: {schema.names}"
                    )
                if c not in spec:
                    check_numeric(schema.field(c), where)
            file_types.update(schema.field(c).type for c in self.columns)
        if len(file_types) == 1 and pa.types.is_floating(next(iter(file_types))) and not spec:
            self.native_dtype = np.dtype(next(iter(file_types)).to_pandas_dtype())
        # Text categories are read as dictionaries and coded value by value, not row by row.
        text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
        self._dictionary_columns = [
            name for name in spec if any(is_text(schema.field(name).type) for is_text in text)
        ] or None
        self.levels = self._find_levels(spec)
        self.categories = {
            name: np.asarray(
                levels.to_pylist(), dtype=object if pa.types.is_string(levels.type) else None
            )
            for name, levels in self.levels.items()
        }
        self._shards = [
            Shard(f"{name} (row group {rg})", md.row_group(rg).num_rows, (i, rg))
            for i, (name, md) in enumerate(zip(self.names, self.metadata))
            for rg in range(md.num_row_groups)
            if md.row_group(rg).num_rows
        ]

    def _find_levels(self, spec: dict[str, list | None]) -> dict[str, pa.Array]:
        """Levels of the categorical columns: given, or found by one scan of those columns."""
        found: dict[str, set] = {name: set() for name, levels in spec.items() if levels is None}
        for i, name in enumerate(self.names if found else []):
            table = self.retry.call_named(
                lambda i=i: self._open(i).read(columns=list(found), use_threads=False),
                f"parquet file {name!r}",
            )
            for column in found:
                found[column].update(pc.unique(table[column].combine_chunks()).to_pylist())
        where = f"parquet_source({self.names[0]!r}, ...)"
        return {
            column: level_array(
                given if given is not None else sorted_levels(found[column] - {None}), column, where
            )
            for column, given in spec.items()
        }

    def _read_footer(self, path: str) -> tuple[pq.FileMetaData, int, str | None]:
        with self.fs.open(path, "rb") as fh:
            metadata = pq.ParquetFile(fh).metadata
            return metadata, fh.seek(0, os.SEEK_END), file_version(self.fs, path, fh)

    def file_versions(self) -> list[str | None]:
        # A file rewritten in place with the same footer (uncompressed pages, same sizes
        # and statistics) keeps its fingerprint; its stamp (mtime, ETag, Last-Modified)
        # changes.
        return list(self.versions)

    def shards(self) -> list[Shard]:
        return self._shards

    def _open(self, file_index: int) -> pq.ParquetFile:
        f = self.files[file_index]
        # Local files go through Arrow's native reader; the footer is reused, not re-read.
        if is_local(self.fs):
            self._check_unchanged(file_index, self.fs.size(f), file_version(self.fs, f))
            return pq.ParquetFile(
                f, metadata=self.metadata[file_index], read_dictionary=self._dictionary_columns
            )
        # A Python file: read on this (producer) thread, which can be stopped and joined at
        # exit, rather than pre-buffered on Arrow's own threads, which cannot.
        fh = self.fs.open(f, "rb")
        try:  # no request beyond the open's own: the size, and a stamp if the store gives one
            self._check_unchanged(file_index, fh.size, file_version(self.fs, f, fh, ask=False))
        except ValueError:
            fh.close()
            raise
        return pq.ParquetFile(
            GuardedFile(fh),
            metadata=self.metadata[file_index],
            read_dictionary=self._dictionary_columns,
            pre_buffer=False,
        )

    def _check_unchanged(self, file_index: int, size: int | None, version: str | None) -> None:
        """Refuse a file rewritten since the source was built: its footer, row counts and
        cached rows describe the old one, and reading it with them fails deep in the
        decoder or, with the same layout, silently reads other rows."""
        then = (self.sizes[file_index], self.versions[file_index])
        if size is not None and size != then[0]:
            change = f"{then[0]:,d} bytes then, {size:,d} now"
        elif version is not None and then[1] is not None and version != then[1]:
            change = f"{then[1]} then, {version} now"
        else:
            return
        raise ValueError(
            f"parquet file {self.names[file_index]!r} changed since the source was built "
            f"({change}): build the source again (parquet_source(...)) to read it"
        )

    def read_shard(self, shard, dtype=np.float64):
        file_index, rg = shard.key
        try:
            pf = self._open(file_index)
            # One decoding thread: Arrow's pool would compete with the step for the 2nd core,
            # and measured slower (5.3M against 9.0M rows/s on snappy files).
            batches = pf.iter_batches(
                batch_size=READ_BLOCK_ROWS, row_groups=[rg], columns=self.columns, use_threads=False
            )
            for rb in batches:
                yield record_batch_to_array(encode_categories(rb, self.levels, shard.name), dtype)
            return
        except Exception as err:
            if isinstance(err, ValueError) and is_own_error(err):
                raise  # names the shard already: an unknown level, a file changed since
            # Arrow's or the filesystem's (ValueErrors too: ArrowInvalid, fsspec's refusal
            # of a server without Range requests): named, redacted, unchained
            failure = read_error(err, f"parquet {shard.name}")
        raise failure

    def fingerprint(self):
        fp = super().fingerprint()
        if self.commits:  # a checkpoint of one Hub revision does not resume on another
            fp["commits"] = sorted(self.commits.values())
        fp["files"] = [
            [md.num_rows, size, _footer_digest(md)] for md, size in zip(self.metadata, self.sizes)
        ]
        fp["categories"] = {name: levels.to_pylist() for name, levels in self.levels.items()}
        return fp


def _directory_hint(fs, path: str, name: str) -> str:
    """A hint for an HTTP directory linked without its "/" (Spark's ``out.parquet/``)."""
    try:
        page = is_index_page(fs, path)
    except Exception:  # a hint only: the read error stands
        return ""
    return f"; it is a directory, whose URL ends with '/': {name}/" if page else ""


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
        A file, a directory (every ``*.parquet`` file below it, in sorted order, leaving
        out names that start with ``.`` or ``_``, such as ``_SUCCESS``, ``_temporary/`` or
        ``.ipynb_checkpoints/``), a glob such as ``"data/part-*.parquet"`` (directories it
        matches stand for their files), a list of any of these, or an fsspec URL such as
        ``"s3://bucket/criteo/"`` or ``"hf://datasets/user/repo/data/"``. Hive partition
        keys in directory names (``year=2024/``) are not read as columns. An ``http://``
        directory is listed from its index page; the server must answer Range requests
        (nginx, Apache and object stores do; ``python -m http.server`` does not).
    columns : list of str, optional
        Columns to read, in the order they appear in each row. Defaults to every column
        but the index that pandas' ``to_parquet`` stores (``__index_level_0__``), as
        ``pd.read_parquet`` reads them. Columns must be numeric; nulls are read as NaN.
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs`, e.g. credentials for object storage.
        Credentials never appear in errors, logs, ``repr``, state dicts or checkpoints.
    retry : RetryPolicy or int, optional
        How transient errors (5xx and 429 answers, dropped connections, timeouts) are
        retried; an int is a number of tries. Defaults to 4 tries with exponential backoff
        from 0.5 s. Missing files and refused permissions fail at once.
    categorical : list of str or dict, optional
        Columns delivered as integer codes ``0 .. n_levels - 1``, e.g. group labels for a
        hierarchical model. The codes are the same in every shard and epoch: the levels
        are sorted, and found by one scan of those columns at construction, or given as a
        dict ``{column: levels}``. ``source.categories[column]`` (also
        ``loader.categories``) lists them in code order. A level missing from the given
        ones raises an error naming it. Missing values (nulls) are an error too, unless
        the given levels hold ``None``: ``{column: [*source.categories[column], None]}``
        gives them a code of their own.

    Returns
    -------
    ParquetSource

    Notes
    -----
    Row groups are the shards that the loader shuffles, so many moderate row groups
    (about 10^5 rows) shuffle better than one huge one.

    Examples
    --------
    .. code-block:: python

        from pymc.variational.streaming import DataLoader, parquet_source

        source = parquet_source("criteo/", columns=[f"I{i}" for i in range(1, 14)] + ["label"])
        loader = DataLoader(source, batch_size=4096)
        len(loader)  # the number of rows, read from the footers

    Remote stores work through fsspec: object storage (``pip install s3fs``), HTTP
    (``pip install "pymc-streaming[http]"``) or the Hugging Face Hub
    (``pip install "pymc-streaming[hf]"``, which registers ``hf://``):

    .. code-block:: python

        source = parquet_source("s3://my-bucket/criteo/", storage_options={"anon": False})
        source = parquet_source("hf://datasets/criteo/CriteoClickLogs/day_0/*.parquet")
        source = parquet_source(
            "hf://datasets/me/private-clicks/data/", storage_options={"token": "hf_..."}
        )
    """
    return ParquetSource(
        path, columns=columns, storage_options=storage_options, retry=retry, categorical=categorical
    )
