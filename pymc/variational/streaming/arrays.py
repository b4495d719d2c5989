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
"""In-memory arrays served in slices: :func:`array_source`, for small data and tests."""

from __future__ import annotations

import zlib

from collections.abc import Sequence

import numpy as np

from pymc.variational.streaming.datasets import READ_BLOCK_ROWS, IterableDataset, Shard, is_count

__all__ = ["ArraySource", "array_source"]


class ArraySource(IterableDataset):
    """An in-memory array served in slices of ``shard_rows`` rows.

    Create it with :func:`array_source`.
    """

    def __init__(self, array, columns=None, shard_rows=READ_BLOCK_ROWS):
        if hasattr(array, "columns") and hasattr(array, "to_numpy"):  # a pandas DataFrame
            columns = list(map(str, array.columns)) if columns is None else columns
            frame, array = array, array.to_numpy()
            if array.dtype == object:  # mixed column types, or pandas' nullable ones with NA
                array = np.column_stack([_numeric(frame[c], c) for c in frame.columns])
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
        if array.shape[1] == 0:
            raise ValueError(f"array_source got an array with no columns, shape {array.shape}")
        if not is_count(shard_rows) or shard_rows <= 0:
            raise ValueError(f"shard_rows must be a positive whole number, got {shard_rows!r}")
        self.array = array
        self.columns = (
            list(columns) if columns is not None else [f"x{j}" for j in range(array.shape[1])]
        )
        if len(self.columns) != array.shape[1]:
            raise ValueError(
                f"array_source got {len(self.columns)} column names for an array with "
                f"{array.shape[1]} columns"
            )
        n = array.shape[0]
        bounds = [(a, min(a + shard_rows, n)) for a in range(0, n, shard_rows)]
        self._shards = [Shard(f"array rows {a}:{b}", b - a, (a, b)) for a, b in bounds]
        self._checksum: int | None = None

    def shards(self):
        return self._shards

    def read_shard(self, shard, dtype=np.float64):
        a, b = shard.key
        # A copy: a transform may change its block in place, never the user's array.
        yield np.array(self.array[a:b], dtype=dtype)

    def fingerprint(self):
        fp = super().fingerprint()
        if self._checksum is None:  # once: the array is the source's, not to be changed
            self._checksum = zlib.crc32(np.ascontiguousarray(self.array).view(np.uint8).ravel())
        fp["checksum"] = self._checksum
        return fp


def _numeric(column, name) -> np.ndarray:
    """A DataFrame column as float64, pandas' missing values (``pd.NA``) as NaN."""
    try:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"array_source needs numeric DataFrame columns; column {name!r} (dtype "
            f"{column.dtype}) is not: {err}"
        ) from None


def array_source(
    array, columns: Sequence[str] | None = None, shard_rows: int = READ_BLOCK_ROWS
) -> ArraySource:
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
