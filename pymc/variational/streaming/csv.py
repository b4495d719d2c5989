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
"""Delimited text files parsed incrementally by pyarrow: :func:`csv_source`."""

from __future__ import annotations

import os
import re
import zlib

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pymc.variational.streaming.arrow import (
    encode_categories,
    level_array,
    record_batch_to_array,
    resolve_categorical,
    sorted_levels,
)
from pymc.variational.streaming.datasets import IterableDataset, Shard, is_count, select_columns
from pymc.variational.streaming.files import (
    display_path,
    is_fork_safe,
    is_hub,
    is_local,
    resolve_files,
)
from pymc.variational.streaming.read_errors import is_own_error, read_error
from pymc.variational.streaming.redaction import redact
from pymc.variational.streaming.retry import RetryPolicy, as_retry_policy
from pymc.variational.streaming.shutdown import GuardedFile

__all__ = ["CSVSource", "csv_source"]

#: File endings a directory is searched for (a file named directly may have any name).
SUFFIXES = tuple(
    text + packed
    for text in (".csv", ".tsv", ".txt", ".psv", ".dat")
    for packed in ("", ".gz", ".bz2", ".xz", ".zst", ".zip")
)
_CSV_COLUMN = re.compile(r"In CSV column #(\d+): Row #(\d+): (.*)", re.DOTALL)
_COMMENTS = (
    "lines starting with '#' look like comments, which csv_source reads as data; remove "
    "them from the file (e.g. grep -v '^#' in.csv > out.csv)"
)
_BINARY_MAGIC = {b"PAR1": "a parquet file: read it with parquet_source", b"\x89HDF": "an HDF5 file"}


class _Checksum:
    """A read-only file wrapper that keeps a CRC-32 of every byte read through it."""

    def __init__(self, fh):
        self.fh, self.crc, self.size = fh, 0, 0
        self.line_breaks = self.blank_lines = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        # Lines the parser skips or joins; a blank line split by a read is not counted.
        self.line_breaks += data.count(b"\n")
        self.blank_lines += data.count(b"\n\n") + data.count(b"\n\r\n")
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class CSVSource(IterableDataset):
    """Delimited text files read incrementally by pyarrow.

    Create it with :func:`csv_source`.
    """

    def __init__(
        self,
        path,
        columns=None,
        delimiter=",",
        header=None,
        column_names=None,
        storage_options=None,
        num_rows=None,
        block_bytes=1 << 22,
        retry=None,
        categorical=None,
        quote_char='"',
    ):
        self.retry = as_retry_policy(retry)
        self.fs, self.files, self.commits = self.retry.call_named(
            lambda: resolve_files(path, storage_options, SUFFIXES, "csv"),
            f"csv_source({redact(str(path))!r})",
            own=(FileNotFoundError, NotADirectoryError, ValueError, TypeError, KeyError),
        )
        self.fork_safe = is_fork_safe(self.fs)
        if retry is None and is_hub(self.fs):
            # huggingface_hub retries each request itself, for about 23 s: one more try
            # of ours is enough (4 would stack to 90 s on a file that keeps failing).
            self.retry = RetryPolicy(tries=2)
        self.names = [display_path(self.fs, f) for f in self.files]
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ValueError(
                f"delimiter must be one character, got {delimiter!r} (a tab is '\\t', not '\\\\t')"
            )
        if quote_char is not None and (not isinstance(quote_char, str) or len(quote_char) != 1):
            raise ValueError(f"quote_char must be one character or None, got {quote_char!r}")
        self.delimiter, self.quote_char = delimiter, quote_char
        # As pandas' names=: given names mean the file has no header, unless told otherwise.
        self.header = column_names is None if header is None else bool(header)
        self.block_bytes = int(block_bytes)
        self._text_columns: set[str] = set()
        where = f"CSV file {self.names[0]!r}"
        self._read(0, lambda: self._check_text(0))
        header_names = (
            self._read(0, lambda: self._read_header(0))
            if self.header or column_names is None
            else None
        )
        self._given_names = column_names is not None
        self.column_names = list(column_names) if column_names is not None else header_names
        if self.header and header_names is not None and len(header_names) != len(self.column_names):
            raise ValueError(
                f"column_names gives {len(self.column_names)} names, but the header of {where} "
                f"has {len(header_names)} columns: {header_names}"
            )
        self.columns = select_columns(self.column_names, columns, where)
        #: Each file's own column names where its header orders them otherwise.
        self._file_names: dict[int, list[str]] = {}
        if self.header:
            self._align_headers(header_names)
        spec = resolve_categorical(categorical, self.columns, where)
        self._text_columns = set(spec)
        self.levels = self._find_levels(spec)
        self.categories = {
            name: np.asarray(levels.to_pylist(), dtype=object)
            for name, levels in self.levels.items()
        }
        if num_rows is not None:
            counts = self._given_counts(num_rows)
            self.checksums = [None] * len(self.files)
        else:
            counted = [
                self._read(i, lambda i=i: self._count_rows(i)) for i in range(len(self.files))
            ]
            counts = [n for n, _ in counted]
            self.checksums = [crc for _, crc in counted]
        # The fingerprint holds a CRC-32 of every file's bytes, unless num_rows was given.
        self.cacheable = num_rows is None
        self._shards = [Shard(name, n, i) for i, (name, n) in enumerate(zip(self.names, counts))]

    # --------------------------------------------------------------- construction
    def _check_text(self, i: int) -> None:
        """Refuse a binary file up front, rather than failing deep inside the parser."""
        with self.fs.open(self.files[i], "rb", compression="infer") as fh:
            head = fh.read(4096)
        for magic, what in _BINARY_MAGIC.items():
            if head.startswith(magic):
                raise ValueError(f"CSV file {self.names[i]!r} is {what}, not delimited text")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.start < len(head) - 4:  # not just a character cut by the 4 kB boundary
                raise ValueError(
                    f"CSV file {self.names[i]!r} is not UTF-8 text (byte {err.start} is "
                    f"{head[err.start : err.start + 1]!r}); csv_source reads delimited text files"
                ) from None
        lines = head.split(b"\n", 2)
        sep = self.delimiter.encode()
        # A '#' header with fewer fields than the next line would fail to parse anyway.
        if len(lines) > 2 and lines[0].lstrip().startswith(b"#"):
            if lines[0].count(sep) < lines[1].count(sep):
                raise ValueError(f"CSV file {self.names[i]!r}, line 1: {_COMMENTS}")

    def _read_header(self, i: int) -> list[str]:
        """Column names as the parser reads them: from the header, or f0, f1, ... without."""
        with self._open_reader(i, names=None, columns=None, header_names=self.header) as reader:
            names = reader.schema.names
        if not names:
            raise ValueError(f"CSV file {self.names[i]!r} is empty; expected a header line")
        return names

    def _read(self, i: int, fn: Callable[[], Any]) -> Any:
        """``fn()``, a read of file ``i`` when the source is built: retried, and a failure
        named (redacted); the ValueErrors of the parser name the file and line already."""
        where = f"CSV file {self.names[i]!r}"
        failure = None
        try:
            return self.retry.call_named(fn, where, own=(ValueError,))
        except ValueError as err:
            if is_own_error(err):
                raise
            failure = read_error(err, where)  # fsspec's, e.g. a server without Range requests
        raise failure

    def _align_headers(self, first: list[str]) -> None:
        """Read the header of every other file: one with the columns in another order is
        read by name, like a parquet file; one without a selected column is an error."""
        for i in range(1, len(self.files)):
            names = self._read(i, lambda i=i: self._read_header(i))
            if names == first:
                continue
            where = f"CSV file {self.names[i]!r}"
            if self._given_names:
                raise ValueError(
                    f"{where} has the header {names}, but {self.names[0]!r} has {first}: "
                    "column_names= renames the columns by position, so every file needs the "
                    "same header; leave out column_names to read the columns by name"
                )
            missing = [c for c in self.columns if c not in names]
            if missing:
                raise KeyError(
                    f"{where} has no column {missing[0]!r}, which {self.names[0]!r} has; "
                    f"available columns: {names}"
                )
            self._file_names[i] = names

    def _given_counts(self, num_rows) -> list[int]:
        if is_count(num_rows):
            counts = [num_rows]
        elif isinstance(num_rows, Sequence) and not isinstance(num_rows, str):
            counts = list(num_rows)
        else:
            counts = None
        if counts is None or len(counts) != len(self.files) or not all(is_count(n) for n in counts):
            raise ValueError(
                f"num_rows must give one count per file (csv_source reads {len(self.files)} "
                f"file(s)), got {num_rows!r}"
            )
        return [int(n) for n in counts]

    def _count_rows(self, i: int) -> tuple[int, int]:
        """Rows of file ``i`` as the parser sees them (quoted line breaks are not rows), and a
        CRC-32 of its bytes, in one pass that parses a single column."""
        with self.fs.open(self.files[i], "rb", compression="infer") as raw:
            fh = _Checksum(raw)
            names = self._names_arg(i)
            first = (names or self.column_names)[0]
            with self._open_reader(i, names, [first], fh=fh, types={first: pa.string()}) as reader:
                rows = sum(rb.num_rows for rb in _batches(reader, self.names[i], names))
            while fh.read(1 << 20):  # bytes the parser left unread still belong to the checksum
                pass
        # Line breaks that are not between rows are inside quoted values: legitimately, or
        # because a quote never closes and the rest of the file became one value.
        if fh.line_breaks - fh.blank_lines - int(self.header) > rows and self.quote_char:
            self._check_last_row(i, rows)
        return rows, fh.crc

    def _check_last_row(self, i: int, rows: int) -> None:
        """Refuse a file whose last row ends inside quotes: a quote that never closes
        swallows the rest of the file into one value, and with it every later row."""
        names = self._names_arg(i) or self.column_names
        last = None
        with self._open_reader(i, names, None, types=dict.fromkeys(names, pa.string())) as reader:
            for rb in _batches(reader, self.names[i], names):
                last = rb if rb.num_rows else last
        for name, column in zip(names, last.columns if last is not None else []):
            value = column[-1].as_py()
            if isinstance(value, str) and value.endswith(("\n", "\r")):
                lines = value.count("\n")
                raise ValueError(
                    f"CSV file {self.names[i]!r}: column {name!r} of row {rows:,d} (the last "
                    f"row read) opens a quoted value with {self.quote_char!r} that never closes, "
                    f"so the next {lines:,d} line(s), to the end of the file, were read as that "
                    f"value. Close the quote in the file, or pass quote_char=None to read "
                    f"{self.quote_char!r} as an ordinary character."
                )

    def _find_levels(self, spec: dict[str, list | None]) -> dict[str, pa.Array]:
        """Levels of the categorical columns: given, or found by one scan of those columns."""
        found: dict[str, set] = {name: set() for name, levels in spec.items() if levels is None}

        def scan(i: int) -> None:  # a retry after a failure adds the same levels again
            names = self._names_arg(i)
            with self._open_reader(i, names, list(found)) as reader:
                for rb in _batches(reader, self.names[i], names or self.column_names):
                    for name in found:
                        found[name].update(pc.unique(rb.column(name)).to_pylist())

        for i in range(len(self.files)) if found else []:
            self._read(i, lambda i=i: scan(i))
        where = f"csv_source({self.names[0]!r}, ...)"
        return {
            name: level_array(
                [None if v is None else str(v) for v in given]
                if given is not None
                else sorted_levels(found[name] - {None}),
                name,
                where,
                pa.string(),
            )
            for name, given in spec.items()
        }

    # --------------------------------------------------------------- reading
    def _names_arg(self, i: int) -> list[str] | None:
        """Names to give the parser for file ``i``: its own header's where it orders the
        columns otherwise, ours, or None where the parser generates them itself."""
        if i in self._file_names:
            return self._file_names[i]
        return self.column_names if (self._given_names or self.header) else None

    def _open_reader(self, i, names, columns, fh=None, types=None, header_names=False):
        """A pyarrow CSV reader of file ``i``; ``fh`` reads through a given file object."""
        own = fh is None
        if own:
            fh = self.fs.open(self.files[i], "rb", compression="infer")
            if not is_local(self.fs):  # read ahead on Arrow's threads: counted, stopped at exit
                fh = GuardedFile(fh)
        read_options = pa_csv.ReadOptions(
            column_names=names,
            autogenerate_column_names=names is None and not header_names,
            skip_rows=1 if (self.header and names is not None) else 0,
            block_size=self.block_bytes,
            use_threads=False,
        )
        if types is None:
            # Categorical columns are text, whatever they look like; the rest must be numbers.
            types = {
                c: pa.string() if c in self._text_columns else pa.float64() for c in columns or []
            }
        # An empty text field is a missing value, as pandas reads and writes it, not a level.
        convert_options = pa_csv.ConvertOptions(
            include_columns=columns, column_types=types or None, strings_can_be_null=True
        )
        # Quoted values may hold line breaks (pandas writes them so): parse them as values.
        quoting = self.quote_char is not None
        parse_options = pa_csv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.quote_char if quoting else False,
            newlines_in_values=quoting,
        )
        try:
            reader = pa_csv.open_csv(
                fh,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowException as err:  # the first block is parsed on opening
            if own:
                fh.close()
            raise ValueError(
                _csv_error(err, self.names[i], getattr(self, "column_names", None))
            ) from None
        return _ClosingReader(reader, fh if own else None)

    def read_shard(self, shard, dtype=np.float64):
        try:
            names = self._names_arg(shard.key)
            with self._open_reader(shard.key, names, self.columns) as reader:
                for rb in _batches(reader, shard.name, names or self.column_names):
                    yield record_batch_to_array(
                        encode_categories(rb, self.levels, shard.name), dtype
                    )
            return
        except Exception as err:
            if isinstance(err, ValueError) and is_own_error(err):
                raise  # names the file, line and column already
            # The filesystem's (ValueErrors too: fsspec's refusal, past the first block, of
            # a server without Range requests): named, redacted, unchained
            failure = read_error(err, f"CSV file {shard.name!r}")
        raise failure

    def fingerprint(self):
        fp = super().fingerprint()
        if self.commits:  # a checkpoint of one Hub revision does not resume on another
            fp["commits"] = sorted(self.commits.values())
        fp["files"] = [[s.num_rows, crc] for s, crc in zip(self._shards, self.checksums)]
        # The names say which field of a line each selected column is: the same bytes
        # read with other names or another delimiter are other data.
        fp["read"] = {
            "column_names": list(self.column_names),
            "header": self.header,
            "delimiter": self.delimiter,
            "quote_char": self.quote_char,
        }
        fp["categories"] = {name: levels.to_pylist() for name, levels in self.levels.items()}
        return fp

    def shards(self):
        return self._shards


def _batches(reader, where: str, column_names: list[str] | None = None):
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowException as err:
            raise ValueError(_csv_error(err, where, column_names)) from None


def _csv_error(err: Exception, where: str, column_names: list[str] | None) -> str:
    """pyarrow's CSV message with the column named rather than numbered."""
    text = str(err)
    hint = f"; {_COMMENTS}" if _offending_text(text).lstrip().startswith("#") else ""
    match = _CSV_COLUMN.search(text)
    if match is None or column_names is None or int(match[1]) >= len(column_names):
        return redact(f"CSV file {where!r}: {text}{hint}")
    column = column_names[int(match[1])]
    return redact(
        f"CSV file {where!r}, line {match[2]}, column {column!r}: {match[3]}"
        + (
            hint
            or ". Every selected column must hold numbers; read text columns as "
            "categorical=[...] or leave them out with columns=[...]"
        )
    )


def _offending_text(message: str) -> str:
    """The line or value pyarrow quotes at the end of a parse or conversion error."""
    if "columns, got " in message:  # "... Expected 3 columns, got 1: <the line>"
        return message.partition("columns, got ")[2].partition(": ")[2]
    if message.endswith("'"):  # "... invalid value '<the value>'"
        return message[message.rfind("'", 0, -1) + 1 : -1]
    return ""


class _ClosingReader:
    def __init__(self, reader, fh):
        self.reader, self.fh = reader, fh
        self.schema = reader.schema

    def read_next_batch(self):
        return self.reader.read_next_batch()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()


def csv_source(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
    header: bool | None = None,
    column_names: Sequence[str] | None = None,
    storage_options: dict | None = None,
    num_rows: int | Sequence[int] | None = None,
    retry: RetryPolicy | int | None = None,
    categorical: Sequence[str] | dict[str, Sequence] | None = None,
    quote_char: str | None = '"',
) -> CSVSource:
    """Stream rows from CSV or other delimited text files.

    Each file is parsed incrementally by :func:`pyarrow.csv.open_csv`, a few MB at a time.
    Compressed files (``.gz``, ``.bz2``, ...) are decompressed on the fly. Quoted values
    may hold delimiters and line breaks, as pandas writes them.

    Parameters
    ----------
    path : str, path-like or list of those
        A file, a directory (its ``.csv``, ``.tsv``, ``.txt``, ``.psv`` and ``.dat`` files,
        compressed or not, in sorted order, leaving out names that start with ``.`` or
        ``_``), a glob, a list of these, or an fsspec URL.
    columns : list of str, optional
        Columns to read, in row order. Defaults to every column. Every selected column is
        parsed as a float; empty fields become NaN.
    delimiter : str, default ","
        Field separator, e.g. ``"\\t"`` for TSV.
    header : bool, optional
        Whether the first line of each file holds the column names. Defaults to True
        without ``column_names`` and to False with them, as pandas' ``names=``.
    column_names : list of str, optional
        Names for the columns, for files without a header. With ``header=True`` they
        replace the names in the header line, which is skipped.
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs`.
    num_rows : int or list of int, optional
        Rows per file, when known. Otherwise each file is parsed once at construction
        (one column, about 1 GB/s on local disk) to count its rows exactly and checksum
        its bytes. Without that checksum the data cannot be recognised, so given counts
        also turn the DataLoader's row cache off.
    retry : RetryPolicy or int, optional
        How transient read errors are retried, as in :func:`parquet_source`.
    categorical : list of str or dict, optional
        Columns read as text and delivered as integer codes, as in :func:`parquet_source`;
        given levels are compared as text. An empty field is a missing value.
    quote_char : str or None, default '"'
        Character that quotes values, which may then hold delimiters and line breaks.
        None reads it as an ordinary character (e.g. a TSV whose text holds stray
        quotes). A file whose last quote never closes is refused.

    Returns
    -------
    CSVSource

    Notes
    -----
    Every line after the header is a row: comment lines (``#``) are not skipped, and a
    file holding them is refused with the line named.

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
        quote_char=quote_char,
    )
