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
"""Streaming the partitions of a Dask DataFrame, computed on the user's cluster.

Dask is optional (``pip install "dask[distributed]"``); this module is imported only when
:func:`dask_source` or :class:`DaskSource` is first used.
"""

from __future__ import annotations

import sys
import threading

from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

import numpy as np

from pymc.variational.streaming.datasets import (
    READ_BLOCK_ROWS,
    IterableDataset,
    Shard,
    is_count,
    select_columns,
)
from pymc.variational.streaming.read_errors import is_transient, read_error, retry_after
from pymc.variational.streaming.redaction import redact

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["DaskSource", "dask_source"]

_WHERE = "the dask DataFrame"


def _import_dask():
    """``dask`` and ``dask.dataframe``, or an error that says what to install."""
    try:
        import dask
        import dask.dataframe
    except ImportError as err:
        raise ImportError(
            'dask_source needs dask\'s DataFrame support: pip install "dask[dataframe,distributed]"'
        ) from err
    return dask, dask.dataframe


def _current_client() -> Any | None:
    """The distributed Client that ``.compute()`` would use now, or None.

    None when distributed was never imported (so no Client can exist), when no Client is
    running, or when ``dask.config`` selects another scheduler.
    """
    if "distributed" not in sys.modules:
        return None
    import dask

    from distributed import Client

    setting = dask.config.get("scheduler", None)
    if isinstance(setting, Client):
        client = setting
    elif setting not in (None, "dask.distributed", "distributed"):
        return None
    else:
        try:
            client = Client.current()
        except ValueError:
            return None
    if client.status != "running" or getattr(client, "asynchronous", False):
        return None
    return client


def _check_numeric(dtype: Any, name: str) -> None:
    """Refuse columns that are not integer, float or boolean (numpy or pandas nullable)."""
    if getattr(dtype, "kind", "O") not in "biuf":  # categorical, string, object, datetime: "O", "M"
        raise TypeError(
            f"dask_source: column {name!r} has dtype {dtype}, but only numeric (integer, float, "
            "boolean) columns can be streamed into a model. Leave it out with columns=[...], or "
            "turn it into numbers first (e.g. integer codes)."
        )


def _to_array(frame: Any, labels: list, dtype: np.dtype) -> np.ndarray:
    """Columns of a pandas DataFrame as one C-ordered 2-D array; nulls become NaN."""
    out = np.empty((len(frame), len(labels)), dtype=dtype)
    for j, label in enumerate(labels):
        out[:, j] = frame[label].to_numpy(dtype=dtype, na_value=np.nan)
    return out


def _partition_error(err: BaseException, what: str) -> Exception:
    """A failure on the cluster, redacted: a worker's error repeats the URL it read, with
    its password or signed query string. A missing file or refused access keeps its type;
    whether the error is worth retrying is kept."""
    if isinstance(err, OSError):
        return read_error(err, what)
    error = RuntimeError(redact(f"{what} failed: {type(err).__name__}: {err}"))
    error.transient = is_transient(err)
    error.retry_after = retry_after(err)
    return error


class DaskSource(IterableDataset):
    """A Dask DataFrame read partition by partition, computed on the user's cluster.

    Create it with :func:`dask_source`.
    """

    #: A forked worker process cannot share the parent's connection to the scheduler.
    fork_safe = False

    def __init__(self, ddf: dd.DataFrame, columns: Sequence[str] | None = None, lookahead: int = 2):
        dask, dask_dataframe = _import_dask()
        if not isinstance(ddf, dask_dataframe.DataFrame):
            hint = (
                " (a Series: use ddf.to_frame())"
                if isinstance(ddf, dask_dataframe.Series)
                else " (for in-memory data use array_source)"
            )
            raise TypeError(
                f"dask_source expects a dask.dataframe.DataFrame, got {type(ddf).__name__}{hint}"
            )
        if not is_count(lookahead):
            raise ValueError(f"lookahead must be a non-negative integer, got {lookahead!r}")
        labels = list(ddf.columns)
        names = [str(label) for label in labels]
        if len(set(names)) != len(names):
            raise ValueError(f"{_WHERE} has repeated column names: {names}")
        self.columns = select_columns(names, columns, _WHERE)
        self._labels = [labels[names.index(c)] for c in self.columns]
        dtypes = [ddf.dtypes[label] for label in self._labels]
        for dtype, name in zip(dtypes, self.columns):
            _check_numeric(dtype, name)
        if len(set(dtypes)) == 1 and isinstance(dtypes[0], np.dtype) and dtypes[0].kind == "f":
            self.native_dtype = dtypes[0]  # e.g. float32 data decodes as float32
        self.lookahead = int(lookahead)
        # The optimized graph of each partition, fixed once: the same partitions are then
        # counted and read. (``map_partitions(len)`` may fuse small parquet partitions
        # after the column projection, and count other partitions than those read.)
        self._parts = ddf[self._labels].to_delayed(optimize_graph=True)
        self.npartitions = len(self._parts)
        # One pass over the data, on the cluster, counts the rows of every partition.
        try:
            lengths = dask.compute(*[dask.delayed(len, pure=True)(part) for part in self._parts])
        except Exception as err:
            failure = _partition_error(err, f"counting the rows of {_WHERE}")
        else:
            failure = None
        if failure is not None:
            raise failure
        self.partition_rows = [int(n) for n in lengths]
        self._shards = [
            Shard(f"dask partition {i} of {self.npartitions}", n, i)
            for i, n in enumerate(self.partition_rows)
            if n
        ]
        self._lock = threading.Lock()
        self._upcoming: list[int] = []  # partitions hinted and not yet read, in order
        #: Partitions being computed ahead on the cluster: ``{partition index: Future}``.
        self.futures: dict[int, Any] = {}
        #: How the partitions read so far were obtained: from a future computed ahead, or
        #: computed when read.
        self.reads = {"ahead": 0, "on_read": 0}

    def shards(self) -> list[Shard]:
        return self._shards

    def prefetch_hint(self, shards: list[Shard]) -> None:
        """Start computing the first ``lookahead + 1`` of ``shards`` on the cluster.

        The loader calls it before each epoch with the shards in the order it reads them.
        Futures already submitted for other partitions are released; an empty list
        releases them all.
        """
        with self._lock:
            self._upcoming = [s.key for s in shards]
            self._top_up(self.lookahead + 1)

    def _top_up(self, count: int) -> None:
        """Hold futures for exactly the next ``count`` hinted partitions (lock held)."""
        wanted = self._upcoming[:count]
        for key in [k for k in self.futures if k not in wanted]:
            self.futures.pop(key).release()
        client = _current_client() if wanted else None
        if client is None:
            return
        for key in wanted:
            if key not in self.futures:
                self.futures[key] = client.compute(self._parts[key])

    def read_shard(self, shard: Shard, dtype: np.dtype | type = np.float64) -> Iterator[np.ndarray]:
        """Yield the rows of one partition; integer and boolean dtypes come as float64,
        which the loader checks and casts."""
        key = shard.key
        with self._lock:
            future = self.futures.pop(key, None)
            if key in self._upcoming:
                del self._upcoming[: self._upcoming.index(key) + 1]
                self._top_up(self.lookahead)
        try:
            frame = self._compute(key, future)
        except Exception as err:
            failure = _partition_error(err, f"computing {shard.name}")
        else:
            failure = None
        if failure is not None:  # raised outside the except: the original is not chained
            raise failure
        dtype = np.dtype(dtype)
        decode = dtype if dtype.kind == "f" else np.dtype(np.float64)
        for a in range(0, len(frame), READ_BLOCK_ROWS):
            yield _to_array(frame.iloc[a : a + READ_BLOCK_ROWS], self._labels, decode)

    def _compute(self, key: int, future: Any | None) -> Any:
        """The partition as a pandas DataFrame, from its future when it has a live one."""
        if future is not None and future.client.status == "running":
            try:
                frame = future.result()
                self.reads["ahead"] += 1
                return frame
            except CancelledError:  # e.g. the client restarted: compute it again
                pass
        self.reads["on_read"] += 1
        # The default scheduler: the current distributed Client when there is one.
        return self._parts[key].compute()

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp["npartitions"] = self.npartitions
        fp["partition_rows"] = list(self.partition_rows)
        return fp

    def __iter__(self) -> Iterator[np.ndarray]:
        self.prefetch_hint(self._shards)
        for shard in self._shards:
            yield from self.read_shard(shard)


def dask_source(
    ddf: dd.DataFrame, columns: Sequence[str] | None = None, lookahead: int = 2
) -> DaskSource:
    """Stream rows from a Dask DataFrame, one partition at a time.

    Each partition is a shard: the loader shuffles their order every epoch, and each is
    computed on your cluster (the current :class:`distributed.Client` when there is one,
    else dask's default scheduler) only when the loader is about to read it. The next
    ``lookahead`` partitions of the epoch are computed ahead, and their results stay on
    the cluster until read, so this process holds one partition at a time.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        The data, e.g. from :func:`dask.dataframe.read_parquet`. Partitions of about
        10^5 rows shuffle well; use ``ddf.repartition(...)`` otherwise.
    columns : list of str, optional
        Columns to read, in row order. Defaults to every column. They must be numeric
        (integer, float, boolean, including pandas' nullable types); nulls become NaN.
    lookahead : int, default 2
        Partitions computed ahead of the one being read. ``0`` computes each one when it
        is read. Needs a distributed Client; without one, partitions are computed when read.

    Returns
    -------
    DaskSource

    Notes
    -----
    The rows of every partition are counted once, here, by one pass over the data: that
    gives ``len(loader)`` and lets a resumed loader skip whole partitions. Persist the
    DataFrame (``ddf.persist()``) if computing it is expensive.

    A forked worker process cannot use the Client, so build the
    :class:`~pymc.variational.streaming.DataLoader` with ``workers=0`` (the Trainer then
    reads on a thread); ``workers=1`` raises an error.

    Examples
    --------
    .. code-block:: python

        import dask.dataframe as dd
        from distributed import Client
        from pymc.variational.streaming import DataLoader, dask_source

        client = Client("tcp://scheduler:8786")
        ddf = dd.read_parquet("s3://my-bucket/criteo/")
        ddf = ddf[ddf["I1"] >= 0]  # any lazy dask computation
        source = dask_source(ddf, columns=[f"I{i}" for i in range(1, 14)] + ["label"])
        loader = DataLoader(source, batch_size=4096, workers=0)
        len(loader)  # the number of rows, counted on the cluster
    """
    return DaskSource(ddf, columns=columns, lookahead=lookahead)
