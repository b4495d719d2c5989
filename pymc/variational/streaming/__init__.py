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
"""Out-of-core minibatch variational inference.

``pm.Minibatch`` draws random rows from arrays that live in memory, so its memory grows
with the number of rows ``N``. This subpackage streams rows from parquet, CSV, object
storage or your own :class:`IterableDataset` instead: a :class:`DataLoader` shuffles and
batches them with bounded memory, and a :class:`Trainer` writes each batch into a
``pm.Data`` placeholder before every step of ADVI (or full-rank ADVI, SVGD, ASVGD).

Use it when the data does not fit in RAM, or when it fits but you would rather not hold
it there; for small data ``pm.Minibatch`` is just as good.
"""

from pymc.variational.streaming.arrays import ArraySource, array_source
from pymc.variational.streaming.cache import RowCache
from pymc.variational.streaming.convergence import Convergence, ConvergenceReport
from pymc.variational.streaming.csv import CSVSource, csv_source
from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.datasets import IterableDataset, Shard
from pymc.variational.streaming.optimization import default_optimizer
from pymc.variational.streaming.parquet import ParquetSource, parquet_source
from pymc.variational.streaming.prefetch import BatchIterator
from pymc.variational.streaming.retry import RetryPolicy
from pymc.variational.streaming.stats import ColumnStats, column_stats
from pymc.variational.streaming.trainer import Trainer, TrainerState
from pymc.variational.streaming.validation import EarlyStopping, HeldOutScore

__all__ = [
    "ArraySource",
    "BatchIterator",
    "CSVSource",
    "ColumnStats",
    "Convergence",
    "ConvergenceReport",
    "DataLoader",
    "EarlyStopping",
    "HeldOutScore",
    "IterableDataset",
    "ParquetSource",
    "RetryPolicy",
    "RowCache",
    "Shard",
    "Trainer",
    "TrainerState",
    "array_source",
    "column_stats",
    "csv_source",
    "default_optimizer",
    "parquet_source",
]

# Dask is optional: these names import pymc.variational.streaming.dask on first use.
_DASK_NAMES = ("DaskSource", "dask_source")


def __getattr__(name: str):
    if name in _DASK_NAMES:
        from pymc.variational.streaming import dask as _dask

        return getattr(_dask, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_DASK_NAMES])
