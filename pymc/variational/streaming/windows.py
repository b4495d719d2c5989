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
"""Cutting an epoch's blocks into shuffled windows, epoch after epoch.

Windows hold ``window_rows`` rows, a multiple of the batch size, so no batch spans two of
them. A window's blocks are copied into one reused staging array and gathered in the
plan's permutation into an output buffer; buffers come from a pool when one is given,
since reused memory avoids the page faults of fresh multi-MB arrays, which cost more than
the copies themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from pymc.variational.streaming.blocks import iter_blocks
from pymc.variational.streaming.order import ReadPlan, take_rows
from pymc.variational.streaming.threads import ThreadedIterator

__all__ = ["BufferPool", "produce"]


class BufferPool(Protocol):
    """Where window buffers come from and go back to (a queue, or shared-memory slots)."""

    def get(self) -> np.ndarray: ...

    def put(self, buffer: np.ndarray) -> None: ...


def produce(
    plan: ReadPlan,
    epoch: int,
    batch: int,
    pool: BufferPool | None = None,
    overlap: bool = False,
    stop_epoch: int | None = None,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(epoch, first batch index, rows, buffer)`` pieces from a position on.

    Each piece holds whole batches but for the epoch's last. Endless unless
    ``stop_epoch`` is given: then it ends where that epoch would begin.

    Parameters
    ----------
    plan : ReadPlan
    epoch, batch : int
        Position of the first batch.
    pool : BufferPool, optional
        Reuse window buffers from it; the consumer puts them back when done.
    overlap : bool
        Decode the next window's blocks on a second thread while this one is shuffled:
        faster alone, slower beside a compiled step that needs that core.
    stop_epoch : int, optional
        First epoch not to produce.
    """
    while stop_epoch is None or epoch < stop_epoch:
        produced = False
        for index, rows, buffer in _chunks(plan, epoch, batch, pool, overlap):
            produced = True
            yield epoch, index, rows, buffer
        if not produced and batch == 0:
            raise ValueError(
                f"epoch {epoch} produced no batch: the source yielded fewer than "
                f"batch_size={plan.batch_size} rows with drop_last=True"
            )
        epoch, batch = epoch + 1, 0


def _chunks(plan: ReadPlan, epoch: int, start_batch: int, pool, overlap: bool):
    """``(first batch index, rows, buffer)`` of one epoch, from ``start_batch`` on."""
    B = plan.batch_size
    for first_row, rows, buffer in _windows(plan, epoch, start_batch * B, pool, overlap):
        if plan.drop_last:
            rows = rows[: len(rows) - len(rows) % B]
        if len(rows):
            yield first_row // B, rows, buffer
        elif pool is not None:
            pool.put(buffer)


def _windows(plan: ReadPlan, epoch: int, start_row: int, pool, overlap: bool):
    """``(first row, rows, buffer)`` of each shuffled window from ``start_row`` on."""
    W = plan.window_rows
    staging = np.empty((W, plan.width), plan.stage_dtype)
    scratch = (
        np.empty((W, plan.width), plan.stage_dtype) if plan.stage_dtype != plan.dtype else None
    )
    # The permutation costs as much as the gather (0.55 against 0.25 ms per 65,536 rows to
    # read them back): with a warm row cache it is drawn on the reading thread, else on
    # this one, so that it goes to the thread with less to do.
    warm = plan.cache is not None and plan.cache.missing_bytes() == 0
    parts = _window_parts(plan, epoch, start_row, warm)
    if overlap:
        parts = ThreadedIterator(parts, depth=1, name="pymc-decode")
    try:
        for w, skip, blocks, order in parts:
            n = sum(len(b) for b in blocks)
            rows = np.concatenate(blocks, out=staging[:n]) if len(blocks) > 1 else blocks[0]
            buffer = pool.get() if pool is not None else np.empty((W, plan.width), plan.dtype)
            if order is None:
                order = plan.window_order(epoch, w, n)
            _fill_window(plan, rows, order, buffer[:n], scratch)
            yield w * W + skip, buffer[skip:n], buffer
    finally:
        parts.close()


def _window_parts(plan: ReadPlan, epoch: int, start_row: int, with_order: bool):
    """``(window, rows to skip, blocks, row order)``: each window's blocks in storage order,
    and its permutation when ``with_order`` (else None)."""
    W = plan.window_rows
    w = start_row // W
    skip = start_row - w * W
    blocks: list[np.ndarray] = []
    have = 0
    for block in iter_blocks(plan, epoch, w * W):
        while len(block):
            n = min(W - have, len(block))
            blocks.append(block[:n])
            have += n
            block = block[n:]
            if have == W:
                yield w, skip, blocks, plan.window_order(epoch, w, W) if with_order else None
                blocks, have, skip, w = [], 0, 0, w + 1
    if have > skip:
        yield w, skip, blocks, plan.window_order(epoch, w, have) if with_order else None


def _fill_window(
    plan: ReadPlan, rows: np.ndarray, order: np.ndarray | None, out: np.ndarray, scratch
) -> None:
    """``out[:] = rows[order]`` (or a copy when unshuffled), cast to ``plan.dtype``."""
    if order is None:
        np.copyto(out, rows)
    elif scratch is None:
        take_rows(rows, order, out)
    else:  # the gather moves the narrower dtype, then one cast
        take_rows(rows, order, scratch[: len(rows)])
        np.copyto(out, scratch[: len(rows)])
