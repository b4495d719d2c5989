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
"""The DataLoader's arguments, checked where they are given: each error names the
argument and what it must be."""

from __future__ import annotations

import math
import multiprocessing

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pymc.variational.streaming.datasets import IterableDataset

__all__ = [
    "can_fork",
    "check_loader_arguments",
    "is_int",
    "resolve_sample_shape",
    "resolve_total_size",
]


def can_fork() -> bool:
    """Whether worker processes can be forked here (not on Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def is_int(x: Any) -> bool:
    """Whether ``x`` is an integer (numpy's too), and not a bool."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def check_loader_arguments(
    source: Any,
    *,
    batch_size: Any,
    buffer_size: Any,
    seed: Any,
    prefetch: Any,
    workers: Any,
    shuffle: Any,
    drop_last: Any,
    persistent_workers: Any,
    transform: Any,
    fields: Mapping | None,
    sample_shape: Any,
) -> None:
    """Refuse DataLoader arguments of the wrong type or value, naming them."""
    if not isinstance(source, IterableDataset):
        raise TypeError(
            f"source must be an IterableDataset (e.g. parquet_source(...)), got {type(source).__name__}; "
            "wrap in-memory arrays with array_source(...)"
        )
    if not is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if buffer_size is not None and (not is_int(buffer_size) or buffer_size <= 0):
        raise ValueError(f"buffer_size must be a positive integer, got {buffer_size!r}")
    if seed is not None and (not is_int(seed) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    if not is_int(prefetch) or prefetch < 0:
        raise ValueError(f"prefetch must be a non-negative integer, got {prefetch!r}")
    if workers not in (None, 0, 1):
        raise ValueError(
            f"workers must be 0 (a thread), 1 (a worker process) or None, got {workers!r}"
        )
    if workers == 1 and not can_fork():
        raise ValueError(
            "workers=1 needs the 'fork' start method, which this platform lacks; use workers=0"
        )
    if workers == 1 and not getattr(source, "fork_safe", True):
        raise ValueError(
            f"{type(source).__name__} cannot be read from a forked worker process; use workers=0"
        )
    for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if not isinstance(persistent_workers, bool | np.bool_):
        raise TypeError(f"persistent_workers must be True or False, got {persistent_workers!r}")
    if transform is not None and not callable(transform):
        raise TypeError(
            f"transform must be a function of a 2-D array, got {type(transform).__name__}"
        )
    if fields is not None and sample_shape is not None:
        raise ValueError(
            "give either sample_shape or fields, not both: each field has its own shape"
        )


def resolve_total_size(total_size: int | str | None, num_rows: int | None) -> int | None:
    """The DataLoader's ``total_size``: ``"auto"`` is the source's row count."""
    if total_size is None or (isinstance(total_size, str) and total_size == "auto"):
        return None if total_size is None else num_rows
    if not is_int(total_size) or total_size <= 0:
        raise ValueError(f'total_size must be "auto", a positive int or None, got {total_size!r}')
    if num_rows is not None and total_size < num_rows:  # e.g. a number of batches
        raise ValueError(
            f"total_size={total_size:,d} is smaller than the {num_rows:,d} rows of the "
            "source: it counts the rows each batch stands for, not a number of batches. Leave "
            'total_size="auto", or give a larger N for rows sampled from a larger population'
        )
    return int(total_size)


def resolve_sample_shape(
    sample_shape: Sequence[int] | int | None, column_names: list[str], transform: Callable | None
) -> tuple[int, ...]:
    """The DataLoader's ``sample_shape``: by default one dimension of every column."""
    width = len(column_names)
    if sample_shape is None:
        return (width,)
    if is_int(sample_shape):
        sample_shape = (sample_shape,)
    if isinstance(sample_shape, str) or not all(is_int(d) and d >= 0 for d in sample_shape):
        raise TypeError(f"sample_shape must be a tuple of ints (each >= 0), got {sample_shape!r}")
    shape = tuple(int(d) for d in sample_shape)
    if math.prod(shape) != width:
        after = " after the transform" if transform is not None else ""
        raise ValueError(
            f"sample_shape={shape} holds {math.prod(shape)} values per row, but the rows "
            f"have {width} columns{after}: {column_names}"
        )
    return shape
