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
"""Stopping a fit at the first non-finite loss or parameter, with finite parameters kept."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FiniteGuard"]


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
        restored = ""
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
