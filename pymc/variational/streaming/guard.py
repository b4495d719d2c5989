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
"""Stopping a fit at the first non-finite loss or parameter, with finite parameters kept,
and refusing a batch given by hand that a fit's loader would have refused."""

from __future__ import annotations

import math

from collections.abc import Callable, Mapping

import numpy as np

from pymc.variational.streaming.rules import LabelRule, check_rule

__all__ = ["BatchCheck", "FiniteGuard"]


class FiniteGuard:
    """Copies of the whole state of a fit taken every so often, to roll back to on a NaN.

    The state is every shared variable the step updates (parameters, optimizer moments,
    running averages, the global step, random generators), as given to :meth:`watch`.
    """

    def __init__(self):
        self.variables: list = []
        self._snapshot: tuple[int, tuple[int, int], list] | None = None
        #: ``(step, position)`` the last failure rolled the state back to, or None.
        self.rolled_back: tuple[int, tuple[int, int]] | None = None

    def watch(self, variables, step: int, position: tuple[int, int]) -> None:
        """Guard ``variables`` from now on, starting from their state after ``step``."""
        self.variables = list(variables)
        self.rolled_back = None
        if not self.finite():
            # A snapshot of it would be a NaN state that a failure "rolls back" to.
            self._snapshot = None
            raise FloatingPointError(
                f"the state of the fit after step {step:,d} already holds NaN or inf (parameters "
                "or optimizer state) before this fit takes a step, so there is no finite state "
                "to continue from or roll back to. It was made so outside a fit: by a step "
                "taken with Trainer.step that diverged, or by values set by hand. Build the "
                "Trainer again, or load a checkpoint (fit(ckpt_path=...))."
            )
        self.snapshot(step, position)

    def snapshot(self, step: int, position: tuple[int, int]) -> None:
        """Keep the state as it is after global ``step``, with the stream's ``position``."""
        self._snapshot = (step, position, [v.get_value() for v in self.variables])

    def forget(self) -> None:
        self._snapshot = None

    def finite(self) -> bool:
        """Whether every float array of the state is finite (Adam's moments too: an
        infinite second moment freezes a parameter without any NaN in it)."""
        for v in self.variables:
            x = v.get_value(borrow=True)
            if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
                return False
        return True

    def check_step(
        self, variables: Callable[[], list], step: int, loss: float, computed: bool
    ) -> None:
        """After a step taken by hand (``Trainer.step``): raise as :meth:`fail` does when
        its ``loss`` was ``computed`` and is not finite, judging the state ``variables()``
        returns. No copy was kept to roll back to."""
        if computed and not math.isfinite(loss):
            self.variables = list(variables())
            self.forget()  # a copy from an earlier fit is not the state before this step
            self.fail(step, loss)

    def fail(self, step: int, loss: float | None) -> None:
        """Raise the error for a non-finite ``loss`` at global ``step`` (None: the state
        was found not finite after it), rolling the state back first."""
        if loss == math.inf and self.finite():
            # The parameters are fine: the batch holds a row that the model calls impossible.
            raise ValueError(
                f"the loss at step {step:,d} is infinite: a row of the batch has zero probability "
                "under the model, e.g. a label outside its likelihood's support (a Bernoulli label "
                "of 2, a negative count). Check the DataLoader's columns and transform."
            )
        restored = (
            " No finite copy of the state was kept (a step taken by hand): build the Trainer "
            "again or load a checkpoint."
        )
        if self._snapshot is not None:
            at, position, values = self._snapshot
            for v, value in zip(self.variables, values):
                v.set_value(value)
            self.rolled_back = (at, position)
            restored = (
                f" The fit was rolled back to its finite state after step {at:,d} (parameters, "
                "optimizer state and position in the data): the next fit continues from there."
            )
        what = "the state" if loss is None else "the loss"
        raise FloatingPointError(
            f"a non-finite value appeared in {what} by step {step:,d} of the optimization."
            f"{restored} Try a smaller learning rate (obj_optimizer=pm.adam(learning_rate=...)), "
            "total_grad_norm_constraint=..., or check the data and the priors."
        )


class BatchCheck:
    """The checks a fit's loader makes on every block, for a batch given by hand to
    ``Trainer.step``: the rows' shape, NaN and inf, whole numbers in range for integer
    placeholders, and the support of the discrete likelihoods that a column feeds.

    Parameters
    ----------
    feed : Feed
        The placeholders the batch goes into.
    rules : dict
        ``{loader column: LabelRule}``, the traced rules of ``Feed.label_rules``.
    """

    def __init__(self, feed, rules: Mapping[int, LabelRule]):
        self.placeholders = feed.placeholders
        self.single = next(iter(feed.placeholders)) if feed.single is not None else None
        loader = feed.loader
        names, fields = list(loader.column_names), loader.fields
        #: ``{placeholder: [(column label, [rules]) for each column of a row]}``
        self.columns: dict[str, list[tuple[str, list[LabelRule]]]] = {}
        for name, var in feed.placeholders.items():
            # Loader columns in placeholder order: a field picks some, else all in order.
            width = int(np.prod(var.get_value(borrow=True).shape[1:], dtype=int))
            index = [int(c) for c in fields.index[name][0]] if fields is not None else range(width)
            dtype = np.dtype(var.dtype)
            own = []
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                own = [LabelRule(f"an {dtype} placeholder", int(info.min), int(info.max))]
            elif dtype.kind == "b":
                own = [LabelRule("a bool placeholder", 0, 1)]
            self.columns[name] = [
                (
                    f"column {names[c]!r}" if c < len(names) else f"column {j}",
                    own + ([rules[c]] if c in rules else []),
                )
                for j, c in enumerate(index)
            ]

    def __call__(self, batch) -> int:
        """Raise a ValueError naming the placeholder, column and row of the first value a
        fit would refuse; else return the number of rows of ``batch``."""
        named = {self.single: batch} if self.single is not None else batch
        if not isinstance(named, Mapping) or set(self.placeholders) - set(named):
            raise ValueError(
                f"Trainer.step needs a dict with an array for each field {list(self.placeholders)}"
            )
        rows = set()
        for name, var in self.placeholders.items():
            values = np.asarray(named[name])
            row_shape = var.get_value(borrow=True).shape[1:]
            if values.ndim != var.ndim or values.shape[1:] != row_shape:
                raise ValueError(
                    f"the batch given to Trainer.step for pm.Data {name!r} has shape "
                    f"{values.shape}, but its rows have shape {row_shape}: expected "
                    f"(rows, {', '.join(map(str, row_shape))})"
                )
            rows.add(len(values))
            if not len(values):
                continue  # refused below, with the other fields' rows
            flat = values.reshape(len(values), -1) if values.ndim > 1 else values[:, None]
            for column, (label, column_rules) in zip(flat.T, self.columns[name]):
                where = f"{label} of the batch given to Trainer.step (pm.Data {name!r})"
                _check_column(column, column_rules, where)
        if len(rows) != 1 or 0 in rows:
            raise ValueError(
                f"the batch given to Trainer.step has {sorted(rows)} rows: its arrays must hold "
                "the same number of rows, at least one"
            )
        return rows.pop()


def _check_column(column: np.ndarray, rules: list[LabelRule], where: str) -> None:
    """Raise a ValueError for the first NaN or inf, non-whole number or value outside a
    rule's range in ``column``."""
    if column.dtype.kind not in "biuf":
        raise ValueError(f"{where} holds values of dtype {column.dtype}, not numbers")
    if column.dtype.kind == "f" and not np.isfinite(column).all():
        r = int(np.argmax(~np.isfinite(column)))
        raise ValueError(
            f"{where} holds {float(column[r])!r} at row {r}, which cannot be fed to a model (a fit's "
            "DataLoader refuses it too): fill or drop missing values before the step"
        )
    for rule in rules:
        check_rule(column, rule, where)  # as the loader checks a block
