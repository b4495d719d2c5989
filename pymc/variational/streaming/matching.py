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
"""Rows of another loader (to predict for, or held out) matched to the Trainer's
placeholders: columns and fields by name, categorical codes by level, group codes checked
as in training, and the columns nothing reads filled with zeros."""

from __future__ import annotations

import warnings

from typing import NoReturn

import numpy as np

from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.feeds import Feed
from pymc.variational.streaming.rules import MissingValuesError

__all__ = ["PlaceholderFiller", "warn_untransformed"]


def warn_untransformed(
    train: DataLoader, loader: DataLoader, loader_name: str, stacklevel: int = 2
) -> None:
    """Warn when the Trainer's loader transforms its rows and ``loader`` does not.

    Parameters
    ----------
    train : DataLoader
        The Trainer's loader.
    loader : DataLoader
        The loader of other rows (to predict for, or held out).
    loader_name : str
        How the warning names ``loader``.
    stacklevel : int, default 2
        As for :func:`warnings.warn`, counted from the caller of this function.
    """
    if train.transform is not None and loader.transform is None:
        warnings.warn(
            f"the Trainer's DataLoader transforms its rows (transform=...) and {loader_name} "
            "does not, so the model sees rows unlike those it was fitted on: pass the same "
            f"transform to {loader_name}",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def _field_columns(loader: DataLoader, field: str) -> list[str]:
    return [loader.column_names[j] for j in loader.fields.index[field][0]]


def _names_read(train: DataLoader, used: dict[str, set[int] | None]) -> set[str]:
    """The names of the Trainer's columns in ``used`` (``Feed.columns_read``)."""
    names: set[str] = set()
    for placeholder, columns in used.items():
        group = (
            list(train.column_names) if train.fields is None else _field_columns(train, placeholder)
        )
        names.update(group if columns is None else [group[j] for j in columns])
    return names


def _check_levels(
    train: DataLoader, loader: DataLoader, read: set[str], loader_name: str, levels_from: str
) -> None:
    """Refuse a categorical column read with other codes than in training: each source
    codes its own levels, so level ``c`` could take the code that ``a`` had in training."""
    given, coded = loader.categories, train.categories
    for name in sorted(read & set(loader.column_names)):
        if name not in coded and name not in given:
            continue
        levels = coded[name].tolist() if name in coded else None
        have = given[name].tolist() if name in given else None
        if levels is not None and have is not None and _same(have, levels[: len(have)]):
            continue  # the same code for every level
        fix = f"build its source with categorical={{{name!r}: {levels_from}.categories[{name!r}]}}"
        if levels is None or have is None:  # codes made by hand may be right: say what to check
            coded_in, numbers_in = (
                (loader_name, "the Trainer's loader")
                if levels is None
                else ("the Trainer's loader", loader_name)
            )
            warnings.warn(
                f"column {name!r} is coded from the levels {_show(levels if have is None else have)} in {coded_in} "
                f"and read as numbers in {numbers_in}: the numbers must be the codes of the "
                f"same levels, or other groups' effects are used. To be sure, "
                + (fix if levels is not None else "read it as the Trainer's source does"),
                UserWarning,
                stacklevel=5,
            )
            continue
        said = (
            f"column {name!r} is coded with the levels {_show(have)} in {loader_name} and "
            f"{_show(levels)} in the Trainer's loader"
        )
        raise ValueError(
            f"{said}: the same code would mean another group. To keep every level's code, "
            f"{fix} (a level the Trainer never saw is then an error naming it)"
        )


def _same(a: list, b: list) -> bool:
    """Equal level lists, a NaN level (of a float column) equal to a NaN level."""
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))


def _show(levels: list) -> str:
    return (
        repr(levels)
        if len(levels) <= 6
        else f"[{', '.join(map(repr, levels[:5]))}, ...] ({len(levels)})"
    )


class PlaceholderFiller:
    """Builds the placeholders' values from the batches of a loader other than the
    Trainer's: columns, and the columns of each field, matched by name, and those that
    ``nodes`` do not read filled with zeros (labels, which new data does not have).

    Parameters
    ----------
    feed : Feed
        The Trainer's placeholders.
    loader : DataLoader
        The other loader.
    nodes : list of TensorVariable
        What is computed from the placeholders; the columns they read must be given.
    loader_name : str, default "the prediction loader"
        How errors name ``loader``.
    reader : str, default "the predictions read"
        How errors say what reads a missing column.
    levels_from : str, default "trainer.dataloader"
        How errors name the loader whose categorical levels to give ``loader``'s source.
    """

    def __init__(
        self,
        feed: Feed,
        loader: DataLoader,
        nodes,
        loader_name: str = "the prediction loader",
        reader: str = "the predictions read",
        levels_from: str = "trainer.dataloader",
    ):
        train = feed.loader
        used = feed.columns_read(nodes)
        self.feed = feed
        self.fields = loader.fields
        self.loader_name, self.reader = loader_name, reader
        #: Names of the Trainer's columns that ``nodes`` read.
        self.read = _names_read(train, used)
        _check_levels(train, loader, self.read, loader_name, levels_from)
        #: ``{column of loader: LabelRule}``: group codes must index their variable, as in
        #: training (a -1 would pick the last group).
        self.rules = {
            loader.column_names.index(train.column_names[j]): rule
            for j, rule in feed.index_rules().items()
            if train.column_names[j] in loader.column_names
        }
        if train.fields is not None:
            if loader.fields is None:
                raise ValueError(f"the Trainer's loader has fields; {loader_name} needs fields too")
            missing = [f for f in train.fields if f not in loader.fields]
            needed = [f for f in missing if used[f] != set()]
            if needed:
                raise ValueError(
                    f"{loader_name} has no field {needed[0]!r}, which {reader}; "
                    f"it has {list(loader.fields)}"
                )
            #: ``{field: positions of the Trainer's columns in the given field}`` of the
            #: fields whose columns come in another order.
            self.order: dict[str, np.ndarray] = {}
            for f in train.fields:
                if f not in loader.fields:
                    continue
                want, have = _field_columns(train, f), _field_columns(loader, f)
                if sorted(want) != sorted(have):
                    lacking = [c for c in want if c not in have]
                    lack = f" (it lacks {lacking})" if lacking else ""
                    raise ValueError(
                        f"field {f!r} has columns {have} in {loader_name} and {want} in the "
                        f"Trainer's{lack}: a field needs the same columns, in any order"
                    )
                if loader.fields.shapes[f] != train.fields.shapes[f]:
                    raise ValueError(
                        f"field {f!r} has rows of shape {loader.fields.shapes[f]} in "
                        f"{loader_name} and {train.fields.shapes[f]} in the Trainer's"
                    )
                if have != want:
                    self.order[f] = np.array([have.index(c) for c in want])
            self.missing_fields = missing
            #: Columns that may be left out of the loader: those of fields nothing reads.
            self.droppable = {
                c for f in train.fields if used[f] == set() for c in _field_columns(train, f)
            }
            return
        if loader.fields is not None:
            raise ValueError(f"the Trainer's loader has no fields; {loader_name} must not have any")
        names, have = list(train.column_names), list(loader.column_names)
        one_dimension = len(train.sample_shape) == 1
        self.droppable = {c for c in names if c not in self.read} if one_dimension else set()
        if have == names and loader.sample_shape == train.sample_shape:
            self.columns = None
            return
        if len(train.sample_shape) != 1 or len(loader.sample_shape) != 1:
            raise ValueError(
                f"the columns {have} of {loader_name} (sample_shape={loader.sample_shape}) differ "
                f"from the Trainer's {names} (sample_shape={train.sample_shape}); unless both are "
                "rows of one dimension they must be the same"
            )
        read = next(iter(used.values()))
        absent = [j for j, c in enumerate(names) if c not in have]
        needed = [names[j] for j in absent if read is None or j in read]
        if needed:
            raise ValueError(
                f"{loader_name} has no column {needed[0]!r}, which {reader}; it has {have}"
            )
        #: ``(placeholder column, given column)`` of every column given.
        self.columns = [(j, have.index(c)) for j, c in enumerate(names) if c in have]

    def raise_missing(self, error: MissingValuesError) -> NoReturn:
        """Raise ``error``, or for missing values in a column nothing reads and that may be
        left out, an error that says to leave it out (filling it is not needed)."""
        if error.column not in self.droppable:
            raise error  # read, or part of what is read: the values must be filled
        raise ValueError(
            f"{error.shard}: column {error.column!r} holds missing values, and it is not among "
            f"the columns {self.reader}: leave it out of {self.loader_name}'s source "
            f"(columns=[...] without {error.column!r}); a column nothing reads need not be there"
        ) from None

    def dtype(self):
        """dtype the loader should produce: the placeholder's, or a dict by given field."""
        if self.fields is None:
            return self.feed.dtype
        return {f: d for f, d in self.feed.dtype.items() if f in self.fields}

    def __call__(self, batch):
        """``(values for the placeholders, rows)``."""
        if self.fields is not None:
            rows = len(next(iter(batch.values())))
            values = dict(batch)
            for f, order in self.order.items():
                values[f] = np.ascontiguousarray(values[f][:, order])
            for f in self.missing_fields:
                var = self.feed.placeholders[f]
                values[f] = np.zeros((rows, *var.get_value(borrow=True).shape[1:]), var.dtype)
            return values, rows
        rows = len(batch)
        if self.columns is None:
            return batch, rows
        var = self.feed.single
        full = np.zeros((rows, var.get_value(borrow=True).shape[1]), var.dtype)
        for j, k in self.columns:
            full[:, j] = batch[:, k]
        return full, rows
