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
"""The model's side of the data path: the ``pm.Data`` placeholders that a loader fills.

A :class:`Feed` finds the placeholders, checks them against the loader (shapes,
``total_size``), plans the checks of discrete likelihoods (whole numbers and support,
done by the loader per block where the file is still known, or per batch when the
column cannot be traced), and writes batches into the placeholders as cheaply as pymc
allows.
"""

from __future__ import annotations

import functools
import math
import warnings

from collections.abc import Callable

import numpy as np
import pytensor.tensor as pt

from pymc.model import Model
from pymc.pytensorf import compile as pytensor_compile
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Cast
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.subtensor import (
    AdvancedSubtensor,
    AdvancedSubtensor1,
    Subtensor,
    indices_from_subtensor,
)

from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.likelihoods import constant_value, support_of
from pymc.variational.streaming.rules import LabelRule

__all__ = ["Feed"]


class Feed:
    """The ``pm.Data`` placeholders of ``model`` that ``loader`` fills.

    Parameters
    ----------
    model : Model
    loader : DataLoader
    data_name : str or None
        Name of the single placeholder, or None to fill one ``pm.Data`` per field.
    """

    def __init__(self, model: Model, loader: DataLoader, data_name: str | None):
        self.model = model
        self.loader = loader
        fields = loader.fields
        if fields is not None and data_name is not None:
            raise ValueError(
                f"the DataLoader has fields {list(fields)}, so the Trainer fills one pm.Data per "
                f"field: pass data_name=None instead of data_name={data_name!r}"
            )
        if fields is None and data_name is None:
            raise ValueError(
                "data_name=None fills one pm.Data per field, but the DataLoader has no fields=; "
                "pass data_name='<name of the pm.Data placeholder>'"
            )
        #: ``{name: shared variable}`` of every placeholder filled.
        self.placeholders = {name: self._find(name) for name in (fields or [data_name])}
        #: The single placeholder of a loader without fields (None with fields).
        self.single = self.placeholders[data_name] if data_name is not None else None
        for name, var in self.placeholders.items():
            self._check_shape(var, loader.sample_shape if fields is None else fields.shapes[name])
        #: Rows each placeholder was created with, for the error of a model that fixes them.
        self.created_rows = {
            n: v.get_value(borrow=True).shape[0] for n, v in self.placeholders.items()
        }

    # --------------------------------------------------------------- discovery and checks
    def _find(self, name: str) -> SharedVariable:
        data_names = [v.name for v in self.model.data_vars]
        if not isinstance(name, str) or name not in data_names:
            what = f"data_name={name!r}" if self.loader.fields is None else f"field {name!r}"
            raise ValueError(
                f"{what} is not a pm.Data variable of the model; the model's pm.Data "
                f"variables are {data_names}. Create the placeholder with "
                f"pm.Data({name!r}, np.zeros((batch_size, *sample_shape)))"
            )
        var = self.model[name]
        if not isinstance(var, SharedVariable):
            raise ValueError(f"pm.Data {name!r} is not a shared variable and cannot be refilled")
        return var

    def _check_shape(self, var: SharedVariable, row_shape: tuple[int, ...]) -> None:
        loader = self.loader
        value_shape = var.get_value(borrow=True).shape
        expected = (loader.batch_size, *row_shape)
        if len(value_shape) != len(expected) or tuple(value_shape[1:]) != row_shape:
            source = "sample_shape" if loader.fields is None else f"field {var.name!r}"
            raise ValueError(
                f"pm.Data {var.name!r} has shape {value_shape}, but the loader's batches have shape "
                f"(batch_size, *row shape) = {expected}. Create it as "
                f"pm.Data({var.name!r}, np.zeros({expected})) or change the DataLoader's {source}"
            )
        static_rows = var.type.shape[0]
        ragged = (
            not loader.drop_last
            and loader.num_rows is not None
            and loader.num_rows % loader.batch_size
        )
        if static_rows is not None and (static_rows != loader.batch_size or ragged):
            raise ValueError(
                f"pm.Data {var.name!r} fixes its first dimension to {static_rows} (shape=...), but "
                f"the loader yields batches of {loader.batch_size} rows and a last batch of "
                f"{(loader.num_rows or 0) % loader.batch_size}. Leave the batch dimension "
                "free (no shape= on pm.Data) or use drop_last=True"
            )

    def fed_observed(self) -> list:
        """Observed variables whose likelihood depends on a placeholder."""
        placeholders = set(self.placeholders.values())
        return [
            rv
            for rv in self.model.observed_RVs
            if placeholders & set(ancestors([rv, self.model.rvs_to_values[rv]]))
        ]

    def sizes_per_row(self, variables: list) -> list[int | None]:
        """How many values each of ``variables`` holds per row of a batch: ``k`` when its
        size is ``k`` times the batch's rows, 0 when it does not depend on them, None when
        neither (e.g. a mask of the rows, which depends on their values).

        Found by computing the sizes with the placeholders holding ``batch_size`` and then
        ``batch_size - 1`` rows of zeros (only ``batch_size`` when the model fixes it).
        """
        if not variables:
            return []
        size_of = pytensor_compile([], [pt.as_tensor(v).size for v in variables])
        original = self.values()
        B = self.loader.batch_size
        sizes = []
        try:
            for rows in (B, B - 1) if B > 1 else (B,):
                for var in self.placeholders.values():
                    value = var.get_value(borrow=True)
                    var.set_value(np.zeros((rows, *value.shape[1:]), value.dtype))
                try:
                    sizes.append([int(n) for n in size_of()])
                except Exception:  # the model fixes the batch dimension: the step explains
                    break
        finally:
            self.restore(original)
        if not sizes:
            return [None] * len(variables)
        per_row = []
        for j in range(len(variables)):
            k, rest = divmod(sizes[0][j], B)
            if len(sizes) > 1 and sizes[1][j] == sizes[0][j]:
                per_row.append(0)
            elif rest == 0 and (len(sizes) == 1 or sizes[1][j] == k * (B - 1)):
                per_row.append(k)
            else:
                per_row.append(None)
        return per_row

    def check_model(self) -> None:
        """Refuse variables per row of the batch; warn about unscaled likelihoods."""
        self.check_local_variables()
        self.check_total_size()

    def check_local_variables(self) -> None:
        """Refuse free variables with values per row of the batch: each step's batch holds
        other rows, so such a variable is tied to positions in the batch, not to rows, and
        the fit comes out wrong however long it runs."""
        free = list(self.model.free_RVs)
        for rv, k in zip(free, self.sizes_per_row(free)):
            if k != 0:
                names = ", ".join(f"pm.Data {name!r}" for name in self.placeholders)
                raise ValueError(
                    f"free variable {rv.name!r} has a size that follows the rows of the batch "
                    f"in {names} (one value per row, e.g. shape=batch.shape[0]). Streamed "
                    "batches hold other rows at every step, so a variable per row cannot be "
                    "learned. Give it a size that does not depend on the batch (e.g. one value "
                    "per group, indexed by a group column), or integrate it out of the "
                    "likelihood."
                )

    def check_total_size(self) -> None:
        """Warn about observed variables and Potentials whose likelihood is not scaled to
        ``len(loader)``: ``k * len(loader)`` for ``k`` values per row of the batch."""
        n = self.loader.total_size
        names = ", ".join(map(repr, self.placeholders))
        observed = self.fed_observed()
        for rv, k in zip(observed, self.sizes_per_row(observed)):
            total = None
            if isinstance(rv.owner.op, MinibatchRandomVariable):
                total = constant_value(rv.owner.inputs[1])
            if not k:  # not a fixed number per row: e.g. a mask, counted by the user
                want = "the number of values it stands for in all the data"
            elif n is None:
                want = "the number of rows of the data" + (f" times {k}" if k > 1 else "")
            else:
                want = f"len(loader){f' * {k}' if k > 1 else ''} (= {k * n})"
            if total is None:
                warnings.warn(
                    f"observed variable {rv.name!r} is fed by pm.Data {names} but has "
                    "no total_size, so its likelihood is not scaled to the data. "
                    f"Pass total_size={want} to {rv.name!r}.",
                    UserWarning,
                    stacklevel=4,
                )
            elif k and n is not None and int(total) != k * n:
                each = f", and {rv.name!r} holds {k} values per row" if k > 1 else ""
                warnings.warn(
                    f"observed variable {rv.name!r} has total_size={int(total)}, but the loader "
                    f"holds len(loader)={n} rows{each}. Pass total_size={want}.",
                    UserWarning,
                    stacklevel=4,
                )
        placeholders = set(self.placeholders.values())
        for potential in self.model.potentials:
            if placeholders & set(ancestors([potential])):
                warnings.warn(
                    f"pm.Potential {potential.name!r} depends on pm.Data {names}, which holds one "
                    f"batch at a time, and pymc does not scale a Potential to the {n} rows of "
                    "the data: the batch would weigh as if it were all of it. Write the "
                    "likelihood as an observed variable with total_size=len(loader), or scale "
                    "the Potential by len(loader) / rows in the batch yourself (and filter "
                    "this warning).",
                    UserWarning,
                    stacklevel=4,
                )

    def explain_step_error(self, err: Exception, rows: int) -> None:
        """Raise a ValueError saying how to fix a model that fixes the batch dimension, when
        the step failed (with ``err``) on a batch shorter than ``batch_size``; else return."""
        size = self.loader.batch_size
        if rows == size:
            made = {n: r for n, r in self.created_rows.items() if r != size}
            if not made:
                return
            name, first = next(iter(made.items()))
            raise ValueError(
                f"the step failed on a batch of {size} rows (batch_size), and pm.Data {name!r} "
                f"was created with {first} rows: the model fixes the batch dimension to {first} "
                f"somewhere, e.g. shape={first} on an observed variable. Create the placeholder "
                f"with batch_size rows, pm.Data({name!r}, np.zeros(({size}, ...))), and leave "
                "the batch dimension free (use the placeholder's shape[0]). pytensor said: "
                f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
            ) from err
        raise ValueError(
            f"the step failed on a batch of {rows} rows, the last of the epoch (the data's "
            f"{self.loader.num_rows} rows are not a multiple of batch_size={size}): the model "
            f"fixes the batch dimension to {size} somewhere, e.g. shape={size} on an observed "
            "variable or one latent variable per row. Leave that dimension free (use the "
            "placeholder's shape[0]) or pass drop_last=True to the DataLoader. "
            f"pytensor said: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        ) from err

    # --------------------------------------------------------------- label checks
    def label_rules(self) -> tuple[dict[int, LabelRule], list[tuple[str, Callable[[], bool], str]]]:
        """How discrete likelihoods are checked.

        Returns
        -------
        traced : dict
            ``{loader column: LabelRule}`` for columns fed straight into a discrete
            likelihood: the loader checks them on every block, naming the file and row.
        untraced : list
            ``(observed name, check, what it must hold)``: compiled checks, true when the
            batch in the placeholders breaks the rule, for values computed from the data.
        """
        traced: dict[int, LabelRule] = {}
        untraced = []
        for rv in self.fed_observed():
            value = self.model.rvs_to_values[rv]
            if not value.dtype.startswith(("int", "uint")):
                continue
            low, high = support_of(rv) or (-math.inf, math.inf)
            fed_by = ", ".join(f"pm.Data {name!r}" for name in self.placeholders)
            rule = LabelRule(
                f"observed variable {rv.name!r}, a discrete likelihood fed by {fed_by}", low, high
            )
            x = _uncast(value)
            columns = self._traced_columns(x)
            if columns is not None:
                for column in columns:
                    traced[column] = rule
            elif x.dtype.startswith("float"):
                bad = pt.any(pt.neq(x, pt.round(x)) | pt.lt(x, low) | pt.gt(x, high))
                untraced.append((rv.name, pytensor_compile([], bad), rule.describe()))
        for column, rule in self.index_rules().items():
            traced.setdefault(column, rule)
        return traced, untraced

    def index_rules(self) -> dict[int, LabelRule]:
        """Columns that index a variable (``a[g]``, ``a[batch[:, 0].astype(int)]``) must hold
        0 .. its length - 1: a code of -1 (pandas' missing category) would count from the
        end and pool its rows into the last group, silently."""
        rules: dict[int, LabelRule] = {}
        for var in ancestors(self.fed_observed()):
            node = var.owner
            if node is None or not isinstance(node.op, AdvancedSubtensor1 | AdvancedSubtensor):
                continue
            indexed, index = node.inputs[0], node.inputs[1]
            if getattr(index, "ndim", None) != 1 or not index.dtype.startswith(("int", "uint")):
                continue
            columns = self._traced_columns(_uncast(index))
            length = self._length(indexed) if columns else None
            if length is None:
                continue
            what = f"the index of {indexed.name or 'a variable'!r} ({length} entries)"
            rules.update(dict.fromkeys(columns, LabelRule(what, 0, length - 1)))
        return rules

    def _length(self, x) -> int | None:
        """The length of ``x``'s first dimension when it does not depend on the data."""
        if x.type.shape and x.type.shape[0] is not None:
            return int(x.type.shape[0])
        if set(self.placeholders.values()) & set(ancestors([x.shape[0]])):
            return None
        try:  # e.g. dims="county": a length held by the model's coords
            return int(pytensor_compile([], x.shape[0])())
        except Exception:
            return None

    def check_labels(self, untraced: list[tuple[str, Callable[[], bool], str]]) -> None:
        """Run the ``untraced`` checks of :meth:`label_rules` on the batch in the placeholders."""
        for name, breaks_rule, rule in untraced:
            if breaks_rule():
                raise ValueError(
                    f"observed variable {name!r} is discrete, but the values that pm.Data "
                    f"{', '.join(map(repr, self.placeholders))} feed it hold non-whole numbers or "
                    f"values outside its support (it takes {rule}); check the DataLoader's columns "
                    "and transform (labels must not be standardized)"
                )

    def _loader_column(self, placeholder: SharedVariable, local: int) -> int:
        fields = self.loader.fields
        return local if fields is None else int(fields.index[placeholder.name][0][local])

    def _traced_columns(self, x) -> list[int] | None:
        """Loader columns that ``x`` reads, when it is a placeholder of single rows or a
        constant column of one (``batch[:, 13]``); None when the graph is anything else."""
        for placeholder in self.placeholders.values():
            if x is placeholder and placeholder.ndim == 1:
                return [self._loader_column(placeholder, 0)]
            node = x.owner
            if (
                node is None
                or not isinstance(node.op, Subtensor)
                or node.inputs[0] is not placeholder
            ):
                continue
            index = indices_from_subtensor(node.inputs[1:], node.op.idx_list)
            if placeholder.ndim != 2 or len(index) != 2 or index[0] != slice(None):
                return None
            column = constant_value(index[1])
            if column is None:
                return None
            width = placeholder.get_value(borrow=True).shape[1]
            return [self._loader_column(placeholder, int(column) % width)]
        return None

    def columns_read(self, outputs) -> dict[str, set[int] | None]:
        """Which columns of each placeholder ``outputs`` depend on: ``{name: columns}``,
        with None for "all of them, or cannot tell" and an empty set for "none".

        A matrix placeholder read through constant columns or slices (``batch[:, 13]``,
        ``batch[:, :13]``) gives those columns.
        """
        graph = set(ancestors(outputs))
        consumers: dict = {}
        for var in graph:
            for inp in var.owner.inputs if var.owner is not None else ():
                consumers.setdefault(inp, set()).add(var.owner.op)
        used: dict[str, set[int] | None] = {}
        for name, placeholder in self.placeholders.items():
            if placeholder not in graph:
                used[name] = set()
                continue
            width = placeholder.get_value(borrow=True).shape[1] if placeholder.ndim == 2 else 1
            columns: set[int] | None = set()
            for var in graph:
                node = var.owner
                if node is None or placeholder not in node.inputs or var is not node.outputs[0]:
                    continue
                if isinstance(node.op, Shape | Shape_i) or all(
                    isinstance(op, Shape | Shape_i) for op in consumers.get(var, ())
                ):
                    continue  # only the number of rows is read (a likelihood's size)
                picked = _subtensor_columns(node, placeholder, width)
                if picked is None:
                    columns = None
                    break
                columns |= picked
            used[name] = columns
        return used

    # --------------------------------------------------------------- writing batches
    @property
    def dtype(self):
        """dtype the loader should produce: the placeholder's, or a dict by field."""
        if self.single is not None:
            return self.single.dtype
        return {name: var.dtype for name, var in self.placeholders.items()}

    def setter(self) -> Callable:
        """A function writing one batch into the placeholder(s), as cheap as possible."""
        if self.single is not None:
            return functools.partial(self.single.set_value, borrow=True)
        setters = [(name, var.set_value) for name, var in self.placeholders.items()]

        def feed(batch: dict) -> None:
            for name, set_value in setters:
                set_value(batch[name], borrow=True)

        return feed

    def cast(self, batch):
        """A batch given by hand, in the placeholders' dtypes."""
        if self.single is not None:
            return np.asarray(batch, dtype=self.single.dtype)
        return {
            name: np.asarray(batch[name], dtype=var.dtype)
            for name, var in self.placeholders.items()
        }

    def values(self) -> dict[str, np.ndarray]:
        """What the placeholders hold now."""
        return {name: var.get_value(borrow=True) for name, var in self.placeholders.items()}

    def restore(self, values: dict[str, np.ndarray]) -> None:
        """Put back what :meth:`values` returned."""
        for name, var in self.placeholders.items():
            var.set_value(values[name], borrow=True)


def _subtensor_columns(node, placeholder, width: int) -> set[int] | None:
    """The columns a node reads of a matrix placeholder when it is ``placeholder[:, c]`` or
    ``placeholder[:, a:b]`` with constants; None otherwise."""
    if (
        not isinstance(node.op, Subtensor)
        or node.inputs[0] is not placeholder
        or placeholder.ndim != 2
    ):
        return None
    index = indices_from_subtensor(node.inputs[1:], node.op.idx_list)
    if len(index) != 2 or index[0] != slice(None):
        return None
    second = index[1]
    if isinstance(second, slice):
        bounds = [
            None if b is None else constant_value(b)
            for b in (second.start, second.stop, second.step)
        ]
        if any(
            b is None and v is not None
            for b, v in zip(bounds, (second.start, second.stop, second.step))
        ):
            return None
        start, stop, step = (None if b is None else int(b) for b in bounds)
        return set(range(width)[slice(start, stop, step)])
    column = constant_value(second)
    return None if column is None else {int(column) % width}


def _uncast(x):
    """The float input of a cast to integers (``observed=batch[:, 13]`` is cast so)."""
    node = x.owner
    if node is not None and isinstance(node.op, Elemwise) and isinstance(node.op.scalar_op, Cast):
        return node.inputs[0]
    return x
