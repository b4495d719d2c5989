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
"""What a row source must provide: the :class:`IterableDataset` protocol and its :class:`Shard`.

A source knows its column names, splits itself into shards (files, row groups, slices,
partitions) and reads one shard at a time as 2-D numeric blocks of shape
``(rows, columns)``. Everything else (row counts, shuffling, batching, resuming, caching)
is derived from those two methods by the :class:`~pymc.variational.streaming.DataLoader`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pymc.variational.streaming.retry import RetryPolicy

__all__ = [
    "READ_BLOCK_ROWS",
    "IterableDataset",
    "Shard",
    "fingerprint_difference",
    "is_count",
    "select_columns",
]

# Rows decoded per block. Large enough that per-block Python overhead vanishes, small
# enough that a block stays a few MB.
READ_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class Shard:
    """One independently readable piece of a source.

    Parameters
    ----------
    name : str
        Where the rows come from, as shown in error messages (a file, a row group, a
        slice). Never holds credentials.
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
    #: connections that a fork cannot share, such as a Dask client or an async client).
    fork_safe: bool = True
    #: Levels of each categorical column, in code order: code ``k`` means ``levels[k]``.
    categories: dict[str, np.ndarray] = {}
    #: Whether the loader may keep decoded rows in a local cache (see
    #: :class:`~pymc.variational.streaming.RowCache`). Set it only when :meth:`fingerprint`
    #: changes whenever the rows do (footers, checksums), since the cache is keyed by it,
    #: when decoding or downloading costs more than reading raw rows back, and when every
    #: block :meth:`read_shard` yields is a new array (it is written in the background).
    cacheable: bool = False

    def shards(self) -> list[Shard]:
        """Return the natural shards of the source, in storage order."""
        raise NotImplementedError(f"{type(self).__name__} must implement shards()")

    def read_shard(self, shard: Shard, dtype: np.dtype | type = np.float64) -> Iterator[np.ndarray]:
        """Yield the rows of one shard as 2-D arrays of shape ``(rows, len(columns))``.

        Blocks should already be of ``dtype`` where that saves a copy; the loader casts
        anything else.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement read_shard()")

    def file_versions(self) -> list | None:
        """Stamps of the stored files (modification times, ETags) that change when a file
        is rewritten in place, or None.

        The row cache keys on them besides :meth:`fingerprint`, so that a file rewritten
        with an identical footer is not read from the cache. They are not part of the
        fingerprint: a checkpoint still resumes on the same data copied elsewhere.
        """
        return None

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
        """Describe the data by its content, cheaply, to detect changes.

        Two sources over the same data give equal fingerprints wherever the files lie;
        checkpoints and caches are refused when the fingerprint differs. The default uses
        the column names and the row count of every shard; sources add what they can
        learn cheaply (footers, sizes, checksums). A fingerprint never holds credentials.
        """
        return {
            "source": type(self).__name__,
            "columns": list(self.columns),
            "shard_rows": [s.num_rows for s in self.shards()],
        }

    def __iter__(self) -> Iterator[np.ndarray]:
        for shard in self.shards():
            yield from self.read_shard(shard)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(columns={len(self.columns)}, shards={len(self.shards())}, "
            f"num_rows={self.num_rows})"
        )


def is_count(n: Any) -> bool:
    """Whether ``n`` is a non-negative integer (and not a bool)."""
    return isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0


def select_columns(available: list[str], columns: Sequence[str] | None, where: str) -> list[str]:
    """The requested ``columns`` after checking them against ``available``, in the order
    requested; every column when ``columns`` is None."""
    if isinstance(columns, str):
        raise TypeError(f"columns must be a list of column names, not the string {columns!r}")
    selected = list(available) if columns is None else list(columns)
    missing = [c for c in selected if c not in available]
    if missing:
        hint = ""
        if f"/{missing[0]}=" in where:
            hint = (
                f"; {missing[0]!r} is a partition key in the directory names, which is not "
                "read: store it in the files as a column"
            )
        raise KeyError(
            f"{where} has no column {missing[0]!r}; available columns: {available}{hint}"
        )
    twice = [c for c in selected if available.count(c) > 1]
    if twice:
        raise ValueError(
            f"{where} has {available.count(twice[0])} columns named {twice[0]!r}, so which one "
            "to read is ambiguous; give them distinct names (for a CSV file, column_names= "
            "renames the header's columns by position)"
        )
    if len(set(selected)) != len(selected):
        raise ValueError(f"columns lists a column twice: {selected}")
    if not selected:
        raise ValueError(f"columns selects no column of {where}; available columns: {available}")
    return selected


def fingerprint_difference(saved: dict, now: dict) -> str:
    """What differs between two fingerprints, in words; empty when they are equal."""
    if saved == now:
        return ""
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return f"{key}: {len(a)} saved, {len(b)} now"
            k = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            return f"{key}: item {k} was {a[k]!r} when saved, is {b[k]!r} now"
        return f"{key}: {a!r} when saved, {b!r} now"
    return "the fingerprints differ"
