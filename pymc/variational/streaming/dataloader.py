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
"""A sized, shuffling, batching loader over an :class:`IterableDataset`.

The loader holds configuration only. Which rows form each batch is decided by
:mod:`~pymc.variational.streaming.order` as a pure function of ``(seed, epoch)``; the work
is done by a producer of :mod:`~pymc.variational.streaming.prefetch` that receives a
:class:`~pymc.variational.streaming.order.ReadPlan`, never the loader.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import weakref

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from pymc.variational.streaming.arguments import (
    can_fork,
    check_loader_arguments,
    is_int,
    resolve_sample_shape,
    resolve_total_size,
)
from pymc.variational.streaming.blocks import apply_transform
from pymc.variational.streaming.cache import CacheEntry, RowCache, resolve_cache
from pymc.variational.streaming.datasets import IterableDataset, Shard, fingerprint_difference
from pymc.variational.streaming.fields import Fields
from pymc.variational.streaming.order import ReadPlan, warn_if_barely_shuffled
from pymc.variational.streaming.prefetch import BatchIterator
from pymc.variational.streaming.rules import LabelRule

__all__ = ["DataLoader"]

# 2**16 rows of 14 float64 columns is 7 MB per window. Larger windows mix rows further
# but gather slower once they outgrow the CPU caches (2x slower at 2**18 rows).
DEFAULT_BUFFER_ROWS = 1 << 16
_CONFIG_KEYS = ("batch_size", "buffer_size", "shuffle", "drop_last")


class DataLoader:
    """Shuffled minibatches streamed from a source.

    ``len(loader)`` is the number of rows ``N`` (not the number of batches, as in
    PyTorch), so that a model written as ``pm.Bernoulli(..., total_size=len(loader))``
    scales its minibatch likelihood by ``N / batch_size`` without knowing about the loader.

    ``for batch in loader:`` runs one epoch, as in PyTorch; each new iteration is the next
    epoch, with a new order. The :class:`~pymc.variational.streaming.Trainer` streams
    epochs without end from its own position, so iterating the loader never changes what
    a fit sees.

    Parameters
    ----------
    source : IterableDataset
        Where the rows come from, e.g. :func:`~pymc.variational.streaming.parquet_source`.
    batch_size : int
        Rows per batch.
    sample_shape : tuple of int, optional
        Shape of one row as the model sees it; batches have shape
        ``(batch_size, *sample_shape)``. Defaults to ``(number of columns,)``.
    total_size : "auto", int or None, default "auto"
        What ``len(loader)`` returns: the source's row count (``"auto"``), a given number
        of rows (at least the source's count, e.g. the population the rows are a sample
        of), or nothing (``None``, for sources that cannot count their rows).
    shuffle : bool, default True
        Permute the shard order and the rows within each window, anew each epoch.
        With ``shuffle=False`` rows come in storage order. A warning says when one shard
        holds most rows: it is then read in its own order, window by window.
    buffer_size : int, optional
        Rows per shuffle window, rounded up to a multiple of ``batch_size``. Defaults to
        ``max(65536, 4 * batch_size)``. The loader holds ``prefetch + 4`` windows (queued,
        in use, staged, being gathered): with the defaults and 14 float64 columns, about
        45 MB whatever the size of the data.
    seed : int, optional
        Seed of every shuffle: the same seed gives the same batches in every process.
        Without one, a Trainer given ``random_seed`` derives the shuffle seed from it, and
        otherwise fresh entropy is drawn (recorded in :meth:`state_dict`).
    drop_last : bool, default False
        Drop the short last batch of each epoch instead of yielding it. By default every
        row is seen exactly once per epoch.
    transform : callable, optional
        Applied to every 2-D block of rows before batching; it must keep the number of
        rows. Use it for row-wise work, e.g. ``lambda x: np.log1p(np.clip(x, 0, None))``.
        It sees one block at a time, so statistics computed inside it (means, sds) would
        differ from block to block: standardize with global statistics from
        :func:`~pymc.variational.streaming.column_stats` instead.
    fields : dict, optional
        Named groups of columns, ``{"X": ["I1", ..., "I13"], "y": "label"}``. Batches are
        then dicts of arrays: a list of columns gives shape ``(batch_size, len(list))``, a
        single column name gives ``(batch_size,)``. This is the streamed form of
        ``pm.Minibatch(X, y)``; the Trainer fills one ``pm.Data`` per field.
    prefetch : int, default 2
        Windows produced ahead of the consumer. ``0`` produces on the calling thread.
    workers : int or None, default None
        ``0`` produces windows on a background thread of this process; ``1`` in a forked
        worker process writing into shared memory, which never waits for the GIL held by
        the compiled PyMC step (Linux and macOS only). ``None`` lets the Trainer use a
        worker process where the source allows it, and plain iteration a thread.
    cache : "auto", None, bool, str, path-like or RowCache, default "auto"
        Keep the decoded rows in a local cache, so that only the first epoch decodes (and
        downloads) them and later epochs and fits read raw rows back. ``"auto"`` caches
        parquet and CSV sources in ``~/.cache/pymc-streaming/rows`` (or
        ``$PYMC_STREAMING_CACHE``) as long as the cache takes at most 20% of the disk and
        leaves 5% of it free (least recently used datasets make room), and otherwise
        reads without a cache, with a warning. A directory, ``True`` (the default
        directory) or a :class:`~pymc.variational.streaming.RowCache` (its own limits)
        insist: rows that do not fit are an error. ``None`` or ``False`` read the source
        every epoch. The cache never changes which rows come when. Rows once cached are
        read as they were: a file rewritten after that goes unseen by this source (without
        the cache, an error names it); a source built again reads the new rows.
    persistent_workers : bool, default False
        Keep a Trainer's producer running from one ``fit`` to the next, as PyTorch keeps
        its workers from one epoch to the next with this option: a fit run in many short
        ``fit`` calls then starts each without a new producer (about 50 ms of start-up and
        shutdown saved per call) and finds its next windows ready. A kept worker process
        holds memory: 130 MB more after the seed's fit, 275 MB once this process has drawn
        samples and collected garbage (pages it shared with the worker are copied).
        ``trainer.close()`` stops it. Plain iteration starts a producer per epoch.
        A kept producer reads with the settings it started with: a setting reassigned
        starts a new one, but a transform whose own state changes needs ``close()``.

    Examples
    --------
    .. code-block:: python

        from pymc.variational.streaming import DataLoader, parquet_source

        loader = DataLoader(parquet_source("criteo/"), batch_size=4096, sample_shape=(14,), seed=1)
        len(loader)  # N, the number of rows
        batch = next(iter(loader))
        batch.shape  # (4096, 14)
        for batch in loader:  # one epoch
            ...
    """

    def __init__(
        self,
        source: IterableDataset,
        batch_size: int,
        sample_shape: Sequence[int] | None = None,
        total_size: int | str | None = "auto",
        shuffle: bool = True,
        buffer_size: int | None = None,
        seed: int | None = None,
        drop_last: bool = False,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        fields: Mapping[str, str | Sequence[str]] | None = None,
        prefetch: int = 2,
        workers: int | None = None,
        cache: str | bool | os.PathLike | RowCache | None = "auto",
        persistent_workers: bool = False,
    ):
        check_loader_arguments(
            source,
            batch_size=batch_size,
            buffer_size=buffer_size,
            seed=seed,
            prefetch=prefetch,
            workers=workers,
            shuffle=shuffle,
            drop_last=drop_last,
            persistent_workers=persistent_workers,
            transform=transform,
            fields=fields,
            sample_shape=sample_shape,
        )
        if buffer_size is None:
            buffer_size = max(DEFAULT_BUFFER_ROWS, 4 * batch_size)
        #: Where decoded rows are cached, or None.
        self.cache = resolve_cache(cache, source)
        self._cache_entries: dict[np.dtype, CacheEntry] = {}
        self.source = source
        self.batch_size = int(batch_size)
        self.buffer_size = int(buffer_size)
        # Windows hold whole batches, so that no batch spans two of them.
        self.window_rows = -(-self.buffer_size // self.batch_size) * self.batch_size
        self.shuffle = bool(shuffle)
        #: The seed given, or None; see :meth:`resolve_seed`.
        self.seed = None if seed is None else int(seed)
        self._own_seed = self.seed if seed is not None else secrets.randbits(63)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = int(prefetch)
        self.workers = workers
        self.persistent_workers = bool(persistent_workers)
        #: Epoch of the next ``iter(loader)``.
        self.epoch = 0
        # Where the next iter(loader) starts after a mid-epoch state; the last iterator.
        self._resume: tuple[int, int] | None = None
        self._last: weakref.ref | None = None
        self.num_rows = source.num_rows
        self.shards = tuple(source.shards())
        if not self.shards or self.num_rows == 0:
            raise ValueError(f"{source!r} holds no rows")
        if self.num_rows is not None and self.drop_last and self.num_rows < self.batch_size:
            raise ValueError(
                f"drop_last=True with batch_size={self.batch_size} but the source holds only "
                f"{self.num_rows} rows: every batch would be dropped"
            )
        self.total_size = resolve_total_size(total_size, self.num_rows)
        if self.shuffle:
            warn_if_barely_shuffled(self.shards, self.window_rows)
        self.width = self._row_width()
        self.column_names = self._column_names()
        self.fields = Fields(fields, self.column_names) if fields is not None else None
        self.sample_shape = (
            resolve_sample_shape(sample_shape, self.column_names, transform)
            if self.fields is None
            else None
        )

    # --------------------------------------------------------------- set-up checks
    def _row_width(self) -> int:
        """Columns per row after the transform, probed on the first block when there is one."""
        width = len(self.source.columns)
        if self.transform is None:
            return width
        shard = self.shards[0]
        first = next(iter(self.source.read_shard(shard, np.float64)))[:64]
        return apply_transform(self.transform, first, shard).shape[1]

    def _column_names(self) -> list[str]:
        cols = list(self.source.columns)
        if len(cols) == self.width:
            return cols
        return [f"#{j} of the transform's output" for j in range(self.width)]

    # --------------------------------------------------------------- sizes and facts
    def __len__(self) -> int:
        if self.total_size is None:
            why = (
                "total_size=None was given"
                if self.num_rows is not None
                else "the source cannot count its rows and total_size=None"
            )
            raise TypeError(
                f"len(loader) is unknown: {why}. Pass total_size=<number of rows> (or "
                '"auto" for a source that counts them) to the DataLoader.'
            )
        return self.total_size

    @property
    def batches_per_epoch(self) -> int | None:
        """Batches in one epoch, or None when the row count is unknown."""
        if self.num_rows is None:
            return None
        if self.drop_last:
            return self.num_rows // self.batch_size
        return -(-self.num_rows // self.batch_size)

    @property
    def categories(self) -> dict[str, np.ndarray]:
        """Levels of the source's categorical columns, in code order (code ``k`` is
        ``levels[k]``), to size per-group variables before training."""
        return dict(getattr(self.source, "categories", {}))

    @property
    def field_shapes(self) -> dict[str, tuple[int, ...]] | None:
        """Shape of one row of each field, or None without fields."""
        return None if self.fields is None else self.fields.shapes

    @property
    def trainer_workers(self) -> int:
        """Workers the Trainer produces with: the loader's ``workers``, else a forked
        process where the platform and the source allow one."""
        if self.workers is not None:
            return self.workers
        return int(can_fork() and getattr(self.source, "fork_safe", True))

    def resolve_seed(self, random_seed: int | None = None) -> int:
        """The shuffle seed: the loader's ``seed`` when given, else one derived from
        ``random_seed`` when given, else the loader's own fresh entropy."""
        if self.seed is not None:
            return self.seed
        if random_seed is not None:
            return int(
                np.random.SeedSequence([int(random_seed), 0x5EED]).generate_state(2, np.uint64)[0]
                >> 1
            )
        return self._own_seed

    def shard_order(self, epoch: int, seed: int | None = None) -> list[Shard]:
        """The shards in the order that ``epoch`` reads them."""
        return self.plan(seed=seed).shard_order(epoch)

    # --------------------------------------------------------------- iteration
    def plan(
        self,
        dtype: Any = np.float64,
        rules: Mapping[int, LabelRule] | None = None,
        seed: int | None = None,
    ) -> ReadPlan:
        """What a producer needs to make this loader's windows in ``dtype``.

        Parameters
        ----------
        dtype : numpy dtype or dict
            dtype of the batches, or with ``fields`` a dict of dtypes by field.
        rules : dict, optional
            ``{column index: LabelRule}`` for columns that must hold whole numbers (in a
            range) although the batches are floats: the Trainer's check of discrete
            likelihoods, done on every block where the file is still known.
        seed : int, optional
            Shuffle seed; defaults to :meth:`resolve_seed`.
        """
        whole: dict[int, LabelRule] = {}
        if self.fields is not None:
            field_dtypes = self.fields.dtypes(dtype)
            window = Fields.window_dtype(field_dtypes)
            whole = self.fields.whole_columns(field_dtypes)
        else:
            if isinstance(dtype, Mapping):
                raise TypeError("a dict of dtypes needs a loader with fields")
            window = np.dtype(dtype)
            if window.kind in "iu":
                whole = dict.fromkeys(range(self.width), LabelRule(f"an {window} placeholder"))
        # A likelihood's rule (whole numbers in its support) is the stronger one: it stays.
        given, rules = rules or {}, dict(whole)
        for j, rule in given.items():
            through = f" (through {whole[j].feeds})" if j in whole else ""
            rules[j] = dataclasses.replace(rule, feeds=rule.feeds + through)
        decode = self._decode_dtype(window)
        return ReadPlan(
            source=self.source,
            shards=self.shards,
            batch_size=self.batch_size,
            window_rows=self.window_rows,
            width=self.width,
            column_names=tuple(self.column_names),
            seed=self.resolve_seed() if seed is None else int(seed),
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            transform=self.transform,
            dtype=window,
            decode_dtype=decode,
            stage_dtype=decode if window.kind == "f" else window,
            rules=rules,
            cache=self._cache_entry(decode),
        )

    def _cache_entry(self, dtype: np.dtype) -> CacheEntry | None:
        if self.cache is None:
            return None
        if dtype not in self._cache_entries:
            self._cache_entries[dtype] = self.cache.entry(self.source, self.shards, dtype)
        return self._cache_entries[dtype]

    def _decode_dtype(self, dtype: np.dtype) -> np.dtype:
        """Decode floats in the source's own precision and cast after the gather, which
        then moves half the bytes for float32 files; transforms and integers get float64."""
        if dtype.kind != "f" or self.transform is not None:
            return np.dtype(np.float64)
        native = getattr(self.source, "native_dtype", None)
        if (
            native is not None
            and np.dtype(native).kind == "f"
            and np.dtype(native).itemsize < dtype.itemsize
        ):
            return np.dtype(native)
        return dtype

    def iterate(
        self,
        start: tuple[int, int] = (0, 0),
        dtype: Any = np.float64,
        prefetch: int | None = None,
        recycle: bool = False,
        workers: int | None = None,
        overlap: bool = True,
        rules: Mapping[int, LabelRule] | None = None,
        seed: int | None = None,
        epochs: int | None = None,
        storage_order: bool = False,
    ) -> BatchIterator:
        """Batches from a position on, epoch after epoch without end by default.

        Parameters
        ----------
        start : tuple of int, default (0, 0)
            ``(epoch, batch index)`` of the first batch, e.g. a Trainer's position.
        dtype : numpy dtype or dict, default float64
            dtype of the batches, or with ``fields`` a dict of dtypes by field. Integer
            dtypes require whole numbers.
        prefetch : int, optional
            Overrides the loader's ``prefetch``.
        recycle : bool, default False
            Reuse window buffers; a batch is then only valid until the iterator has moved
            two windows on. Faster, for consumers that use each batch once.
        workers : int, optional
            Overrides the loader's ``workers`` (``None`` there means a thread here).
        overlap : bool, default True
            Decode the next window on a second thread while the current one is shuffled.
            Faster when the consumer is light; the Trainer turns it off, since its step
            needs that core.
        rules : dict, optional
            See :meth:`plan`.
        seed : int, optional
            Shuffle seed; defaults to :meth:`resolve_seed`.
        epochs : int, optional
            Stop after this many epochs (the first one counted whole).
        storage_order : bool, default False
            Every row once per epoch in storage order, whatever ``shuffle`` and
            ``drop_last`` say: for prediction and scoring.
        """
        plan = self.plan(dtype, rules, seed)
        if storage_order:
            plan = dataclasses.replace(plan, shuffle=False, drop_last=False)
        if plan.cache is not None and not plan.cache.reserve():
            plan = dataclasses.replace(plan, cache=None)
        epoch, batch = start
        return BatchIterator(
            plan,
            (int(epoch), int(batch)),
            self.sample_shape or (),
            fields=self.fields,
            field_dtypes=self.fields.dtypes(dtype) if self.fields is not None else None,
            prefetch=self.prefetch if prefetch is None else prefetch,
            workers=(self.workers or 0) if workers is None else workers,
            recycle=recycle,
            overlap=overlap,
            stop_epoch=None if epochs is None else int(epoch) + int(epochs),
        )

    def __iter__(self) -> BatchIterator:
        """One epoch of batches (the rest of it after a mid-epoch :meth:`load_state_dict`);
        the next ``iter(loader)`` is the next epoch."""
        start, self._resume = self._resume or (self.epoch, 0), None
        self.epoch = start[0] + 1
        iterator = self.iterate(start, epochs=1)
        self._last = weakref.ref(iterator)
        return iterator

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` run ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        # From its start, whatever a state or a live iterator says.
        self.epoch, self._resume, self._last = int(epoch), None, None

    def iter_epoch(self, epoch: int = 0, dtype: Any = np.float64) -> Iterator[np.ndarray | dict]:
        """The batches of one epoch, produced on the calling thread."""
        return self.iterate((epoch, 0), dtype=dtype, prefetch=0, workers=0, epochs=1)

    # --------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """The shuffle seed, where the next ``iter(loader)`` starts, and what a resume must
        check: the batching options and the data's fingerprint (no paths, no credentials).

        Taken while an iterator of the loader is part-way through its epoch, it holds the
        position of that iterator's next batch, as torchdata's ``StatefulDataLoader``
        does: a loader given it goes on with the rest of that epoch.
        """
        epoch, batch = self._resume or (self.epoch, 0)
        iterator = self._last() if self._last is not None else None
        if iterator is not None and not iterator.finished and iterator.position[0] < self.epoch:
            epoch, batch = iterator.position
        return {
            "seed": self.resolve_seed(),
            "epoch": epoch,
            "batch": batch,
            **{key: getattr(self, key) for key in _CONFIG_KEYS},
            "fingerprint": self.source.fingerprint(),
        }

    def check_state_dict(self, state: dict) -> None:
        """Refuse a state taken on other data or with other batching options, saying what
        differs."""
        difference = fingerprint_difference(state["fingerprint"], self.source.fingerprint())
        if difference:
            raise ValueError(f"this state was saved on different data: {difference}")
        for key in _CONFIG_KEYS:
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"this state was saved with {key}={state[key]!r}, but the loader has "
                    f"{key}={getattr(self, key)!r}; the batches would differ"
                )

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`, refusing one taken on other data."""
        self.check_state_dict(state)
        self._own_seed = int(state["seed"])
        if self.seed is not None:
            self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state.get("batch", 0))) if state.get("batch") else None
        self._last = None  # an iterator from before no longer says where the loader stands

    def __repr__(self) -> str:
        shape = (
            f"fields={self.field_shapes}"
            if self.fields is not None
            else f"sample_shape={self.sample_shape}"
        )
        return (
            f"DataLoader({self.source!r}, batch_size={self.batch_size}, {shape}, "
            f"total_size={self.total_size}, shuffle={self.shuffle}, buffer_size={self.buffer_size})"
        )
