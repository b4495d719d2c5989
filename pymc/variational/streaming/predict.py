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
"""Posterior predictions over streamed rows: one pass, bounded memory, rows in order."""

from __future__ import annotations

import os

from collections.abc import Sequence

import numpy as np
import pytensor.tensor as pt

from pymc.distributions.moments.means import mean as distribution_mean
from pymc.exceptions import UndefinedMomentException
from pymc.pytensorf import compile as pytensor_compile
from pytensor.graph.traversal import ancestors

from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.feeds import Feed
from pymc.variational.streaming.likelihoods import likelihood_of
from pymc.variational.streaming.matching import PlaceholderFiller, warn_untransformed
from pymc.variational.streaming.rules import MissingValuesError

__all__ = ["predict"]


def _output_node(feed: Feed, name: str):
    """What is predicted for ``name``: the expected value of an observed variable's
    likelihood, or the variable itself (a ``pm.Deterministic`` of the data)."""
    model = feed.model
    if name not in model.named_vars:
        raise KeyError(
            f"var_names: the model has no variable {name!r}; its variables are {list(model.named_vars)}"
        )
    var = model[name]
    if var in model.observed_RVs:
        try:
            node = distribution_mean(likelihood_of(var))
        except NotImplementedError as err:
            raise NotImplementedError(
                f"the expected value of {name!r}'s likelihood is not known to pymc; predict a "
                f"pm.Deterministic of its mean instead: {err}"
            ) from None
        except UndefinedMomentException as err:
            # A Categorical's labels have no mean: its class probabilities do.
            raise ValueError(
                f"{name!r}'s likelihood has no expected value ({err}); predict a "
                "pm.Deterministic instead, such as its probabilities or its linear predictor"
            ) from None
    else:
        node = var
    if not set(feed.placeholders.values()) & set(ancestors([node])):
        raise ValueError(
            f"{name!r} does not depend on the data in pm.Data {list(feed.placeholders)}: it has no "
            "row to predict. Summarize it with approx.sample() instead"
        )
    return node


def predict(
    approx,
    feed: Feed,
    dataloader: DataLoader,
    var_names: Sequence[str],
    draws: int = 100,
    random_seed: int | None = None,
    out: str | os.PathLike | None = None,
) -> dict[str, np.ndarray] | str:
    """Posterior predictive means and sds of ``var_names`` for every row of a loader.

    See :meth:`Trainer.predict <pymc.variational.streaming.Trainer.predict>`.
    """
    if isinstance(var_names, str):
        var_names = [var_names]
    if not var_names:
        raise ValueError("var_names must name at least one variable to predict")
    if not isinstance(draws, int | np.integer) or isinstance(draws, bool) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    draws = int(draws)
    warn_untransformed(feed.loader, dataloader, "the prediction loader", stacklevel=3)
    nodes = [_output_node(feed, name) for name in var_names]
    filler = PlaceholderFiller(feed, dataloader, nodes)
    outputs = []
    for node in nodes:
        samples = approx.sample_node(node, size=draws)  # (draws, rows, ...)
        outputs += [pt.mean(samples, axis=0), pt.std(samples, axis=0)]
    with feed.model:
        fn = pytensor_compile([], outputs, random_seed=random_seed)
    columns = [name for v in var_names for name in (v, f"{v}_sd")]
    writer = _ParquetRows(out, columns) if out is not None else None
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    saved = feed.values()
    set_batch = feed.setter()
    done = False
    try:
        with dataloader.iterate(
            dtype=filler.dtype(), epochs=1, storage_order=True, prefetch=0, rules=filler.rules
        ) as batches:
            for batch in batches:
                values, rows = filler(batch)
                set_batch(values)
                results = fn()
                for name, value in zip(columns, results):
                    if value.ndim == 0 or value.shape[0] != rows:
                        raise ValueError(
                            f"{name!r} has shape {value.shape} for a batch of {rows} rows; predict "
                            "needs one value (or one array) per row"
                        )
                if writer is not None:
                    writer.write(dict(zip(columns, results)))
                else:
                    for name, value in zip(columns, results):
                        parts[name].append(value)
        done = True
    except MissingValuesError as err:
        filler.raise_missing(err)
    finally:
        feed.restore(saved)
        if writer is not None:
            writer.close(keep=done)
    if writer is not None:
        return os.fspath(out)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


class _ParquetRows:
    """Predictions written batch by batch to a parquet file (temporary name, then renamed)."""

    def __init__(self, path, columns: list[str]):
        self.path = os.fspath(path)
        self.tmp = f"{self.path}.tmp-{os.getpid()}"
        self.columns = columns
        self.writer = None

    def write(self, values: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {
            name: pa.array(v)
            if v.ndim == 1
            else pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(v))
            for name, v in values.items()
        }
        table = pa.table(arrays)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)

    def close(self, keep: bool) -> None:
        """Finish the file, or remove it when the predictions stopped half-way."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if keep:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
