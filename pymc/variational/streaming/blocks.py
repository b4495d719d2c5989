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
"""The rows of an epoch as checked blocks, the way torch's fetchers fetch them.

Shards are read in the plan's order, from the plan's row cache when it holds them
(written through on the way when it does not); a read that fails transiently is retried
and resumes at the next row; the user's transform is applied; and every block is checked
where its file is still known: its shape, NaN and inf, whole numbers for discrete
likelihoods and integer placeholders, and the row count that the source announced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import numpy as np

from pymc.variational.streaming.datasets import READ_BLOCK_ROWS, IterableDataset, Shard
from pymc.variational.streaming.order import ReadPlan
from pymc.variational.streaming.retry import RetryPolicy
from pymc.variational.streaming.rules import MissingValuesError, check_rule

__all__ = ["apply_transform", "iter_blocks"]


def iter_blocks(plan: ReadPlan, epoch: int, skip: int = 0) -> Iterator[np.ndarray]:
    """Checked blocks of ``epoch``'s row stream, in ``plan.stage_dtype``, from row ``skip`` on.

    Whole shards before row ``skip`` are not read at all when their row counts are known,
    nor cached rows before it.
    """
    order = plan.shard_indices(epoch)
    hinted = False
    for i, index in enumerate(order):
        shard = plan.shards[index]
        if shard.num_rows is not None and skip >= shard.num_rows:
            skip -= shard.num_rows
            continue
        if not hinted:  # the order from the first shard actually read
            plan.source.prefetch_hint([plan.shards[k] for k in order[i:]])
            hinted = True
        seen, blocks, finite = _shard_blocks(plan, index, skip)
        skip -= seen
        with closing(blocks):
            for block in blocks:
                n = len(block)
                seen += n
                if skip >= n:
                    skip -= n
                    continue
                if skip:
                    block, skip = block[skip:], 0
                if plan.transform is not None:
                    block = apply_transform(plan.transform, block, shard)
                yield _check_block(plan, block, shard, seen - len(block), finite)
        if shard.num_rows is not None and seen != shard.num_rows:
            raise ValueError(
                f"{shard.name}: the source announced {shard.num_rows} rows but {seen} were read; "
                "the file changed after the loader was built (build the source again), or a "
                "row count given to the source (e.g. csv_source(num_rows=...)) is wrong"
            )


def apply_transform(transform, block: np.ndarray, shard: Shard) -> np.ndarray:
    """``transform(block)``, checked to keep the rows, with errors naming the shard."""
    try:
        out = np.asarray(transform(block))
    except Exception as err:
        raise ValueError(f"transform failed on a block of {shard.name}: {err}") from err
    if out.ndim != 2 or out.shape[0] != block.shape[0]:
        raise ValueError(
            f"transform turned a block of shape {block.shape} from {shard.name} into shape "
            f"{out.shape}; it must return a 2-D array with the same number of rows. To drop "
            "rows, filter the data before streaming it (e.g. write a filtered copy)."
        )
    return out


def _shard_blocks(plan: ReadPlan, index: int, skip: int) -> tuple[int, Iterator[np.ndarray], bool]:
    """``(rows skipped unread, blocks from there, whether they are known finite)`` of shard
    ``index``: cached rows from row ``skip`` on, else the source's rows, written through
    to the cache if there is one."""
    shard = plan.shards[index]
    blocks = _read_resuming(plan.source, shard, plan.decode_dtype)
    if plan.cache is None:
        return 0, blocks, False
    cached = plan.cache.open(index)
    if cached is not None:
        start = min(skip, cached.num_rows)
        # Blocks no larger than a window: the loader's memory stays a few windows.
        blocks = cached.blocks(start, min(READ_BLOCK_ROWS, plan.window_rows))
        return start, blocks, cached.finite and plan.transform is None
    # Rows skipped are not checked, nor raw rows when a transform comes first. A transform
    # may change its block in place: the rows are then written before it runs.
    checked = plan.transform is None and skip == 0
    background = plan.transform is None
    return 0, plan.cache.write_through(index, shard, blocks, checked, background), False


def _read_resuming(source: IterableDataset, shard: Shard, dtype: np.dtype) -> Iterator[np.ndarray]:
    """The shard's blocks; a transient failure reopens it and skips the rows already
    delivered, so a retry neither loses nor repeats a row."""
    policy = getattr(source, "retry", None) or RetryPolicy(tries=1)
    delivered, attempt = 0, 1
    while True:
        try:
            seen = 0
            for block in source.read_shard(shard, dtype):
                end = seen + len(block)
                if end > delivered:
                    block = block[max(delivered - seen, 0) :]
                    delivered = end
                    yield block
                seen = end
            return
        except Exception as err:
            if not policy.should_retry(err, attempt, shard.name):
                raise
            attempt += 1


def _check_block(
    plan: ReadPlan, block: np.ndarray, shard: Shard, first_row: int, finite: bool = False
) -> np.ndarray:
    """The block in the stage dtype, after the checks that need to know its file (NaN and
    inf unless ``finite`` says they were checked when the rows were cached)."""
    if block.ndim != 2 or block.shape[1] != plan.width:
        raise ValueError(
            f"{shard.name} gave a block of shape {block.shape}, expected (rows, {plan.width})"
        )
    if block.dtype.kind == "f" and not finite:
        # The sum is non-finite whenever a value is NaN or inf: one vectorized pass and
        # no temporary the size of the block. Columns are searched only then.
        if not np.isfinite(np.add.reduce(block, axis=None)):
            _raise_non_finite(plan, block, shard, first_row)
    for j, rule in plan.rules.items():
        where = f"{shard.name}: column {plan.column_names[j]!r}"
        check_rule(block[:, j], rule, where, first_row, " of the shard")
    dtype = plan.stage_dtype
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        if info is not None and block.size and (block.min() < info.min or block.max() > info.max):
            j = int(np.flatnonzero(((block < info.min) | (block > info.max)).any(axis=0))[0])
            raise ValueError(
                f"{shard.name}: column {plan.column_names[j]!r} holds values outside the range of "
                f"{dtype} ({info.min} to {info.max})"
            )
    return block.astype(dtype, copy=False)


def _raise_non_finite(plan: ReadPlan, block: np.ndarray, shard: Shard, first_row: int) -> None:
    # Values are checked after the transform, which may have made them (np.log of a zero).
    made = " (after the transform: check it too)" if plan.transform is not None else ""
    for j in range(block.shape[1]):
        bad = ~np.isfinite(block[:, j])
        if bad.any():
            row = first_row + int(np.argmax(bad))
            kind = "NaN" if np.isnan(block[:, j]).any() else "inf"  # NaN first: it is missing
            if kind == "inf":
                raise ValueError(
                    f"{shard.name}: column {plan.column_names[j]!r} holds {int(bad.sum())} inf "
                    f"value(s), first at row {row} of the shard{made}, which cannot be fed to "
                    "a model: replace them in the data, or with the DataLoader's transform= "
                    "(e.g. np.clip), or drop those rows before streaming."
                )
            raise MissingValuesError(
                f"{shard.name}: column {plan.column_names[j]!r} holds {int(bad.sum())} {kind} value(s), "
                f"first at row {row} of the shard{made}. Missing values cannot be fed to a model: fill "
                "missing features with the DataLoader's transform= (e.g. transform=lambda x: "
                "np.nan_to_num(x, nan=0.0) where 0 means 'absent'), and drop rows with missing "
                "labels from the data before streaming it; a filled label is a made-up observation.",
                column=plan.column_names[j],
                shard=shard.name,
            )
    # The sum overflowed but every value is finite: nothing to report.
