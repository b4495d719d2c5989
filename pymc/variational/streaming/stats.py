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
"""Column statistics from one pass over a source, for transforms that need global ones.

A DataLoader's ``transform`` sees one block of rows at a time, so statistics computed
inside it differ from block to block and from file to file: standardizing there fits a
silently different model. :func:`column_stats` reads the data once and returns exact
global means and standard deviations; :meth:`ColumnStats.standardizer` turns them into a
transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pymc.variational.streaming.blocks import apply_transform
from pymc.variational.streaming.datasets import IterableDataset

__all__ = ["ColumnStats", "column_stats"]


@dataclass(frozen=True)
class ColumnStats:
    """Per-column statistics of every row of a source (NaN values left out).

    Attributes
    ----------
    columns : list of str
    count : numpy.ndarray
        Non-missing values per column.
    missing : numpy.ndarray
        NaN values per column.
    mean, sd, min, max : numpy.ndarray
        Population mean and standard deviation, smallest and largest value.
    """

    columns: list[str]
    count: np.ndarray
    missing: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    min: np.ndarray
    max: np.ndarray

    def standardizer(
        self, columns: Sequence[str] | None = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """A transform giving ``columns`` (default: every column) mean 0 and sd 1 with these
        global statistics, and leaving the others (labels) as they are.

        The transform finds columns by position: it expects rows holding the columns of
        these statistics, in their order (a loader over the same source and columns), and
        refuses rows of another width.

        Examples
        --------
        .. code-block:: python

            log = lambda x: np.log1p(np.clip(x, 0, None))
            stats = column_stats(source, transform=log)
            scale = stats.standardizer(columns=features)
            loader = DataLoader(source, batch_size=4096, transform=lambda x: scale(log(x)))
        """
        names = self.columns if columns is None else list(columns)
        unknown = [c for c in names if c not in self.columns]
        if unknown:
            raise KeyError(
                f"standardizer: no column {unknown[0]!r}; the statistics cover {self.columns}"
            )
        index = np.array([self.columns.index(c) for c in names], dtype=int)
        empty = [c for c, n in zip(names, self.count[index]) if n == 0]
        if empty:
            raise ValueError(
                f"standardizer: column {empty[0]!r} holds no value (every row is missing), so it "
                "has no mean nor sd; leave it out with columns=[...]"
            )
        constant = [c for c, s in zip(names, self.sd[index]) if not s > 0]
        if constant:
            raise ValueError(
                f"standardizer: column {constant[0]!r} is constant (sd 0) and cannot be standardized"
            )
        shift, scale = self.mean[index], self.sd[index]

        width = len(self.columns)

        def standardize(x: np.ndarray) -> np.ndarray:
            if np.ndim(x) != 2 or np.shape(x)[1] != width:
                raise ValueError(
                    f"standardizer: expected rows of the {width} columns the statistics "
                    f"describe ({self.columns}), in that order, got an array of shape "
                    f"{np.shape(x)}; compute column_stats on a source with the loader's columns"
                )
            out = np.array(x, dtype=np.float64)
            out[:, index] = (out[:, index] - shift) / scale
            return out

        return standardize


def column_stats(
    source: IterableDataset, transform: Callable[[np.ndarray], np.ndarray] | None = None
) -> ColumnStats:
    """Exact per-column statistics of every row of ``source``, in one streaming pass.

    Parameters
    ----------
    source : IterableDataset
    transform : callable, optional
        Applied to each block first, e.g. a log, so that the statistics describe what
        the model will see.

    Returns
    -------
    ColumnStats

    Notes
    -----
    Blocks are merged with Chan et al.'s pairwise update, exact and stable for any number
    of rows. Memory holds one block at a time.
    """
    count = total_mean = m2 = low = high = missing = None
    for shard in source.shards():
        for block in source.read_shard(shard, np.float64):
            block = np.asarray(block, dtype=np.float64)
            if transform is not None:
                block = apply_transform(transform, block, shard)
            nan = np.isnan(block)
            n = (~nan).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, np.nansum(block, axis=0) / np.maximum(n, 1), 0.0)
                sq = np.nansum((block - mean) ** 2, axis=0)
            lo = np.where(n > 0, np.nanmin(np.where(nan, np.inf, block), axis=0), np.inf)
            hi = np.where(n > 0, np.nanmax(np.where(nan, -np.inf, block), axis=0), -np.inf)
            if count is None:
                count, total_mean, m2, low, high, missing = n, mean, sq, lo, hi, nan.sum(axis=0)
                continue
            merged = count + n
            delta = mean - total_mean
            with np.errstate(invalid="ignore", divide="ignore"):
                weight = np.where(merged > 0, n / np.maximum(merged, 1), 0.0)
            m2 = m2 + sq + delta**2 * count * weight
            total_mean = total_mean + delta * weight
            count, low, high = merged, np.minimum(low, lo), np.maximum(high, hi)
            missing = missing + nan.sum(axis=0)
    if count is None:
        raise ValueError(f"column_stats: {source!r} holds no rows")
    width = len(total_mean)
    names = (
        list(source.columns)
        if len(source.columns) == width
        else [f"column {j}" for j in range(width)]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.where(count > 0, m2 / np.maximum(count, 1), np.nan))
    mean = np.where(count > 0, total_mean, np.nan)  # a column with no value has no mean
    return ColumnStats(names, count, missing, mean, sd, low, high)
