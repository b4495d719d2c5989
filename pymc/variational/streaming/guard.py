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
    """Copies of the parameters taken every so often, to roll back to on a NaN.

    Parameters
    ----------
    params : list of SharedVariable
        The approximation's parameters.
    """

    def __init__(self, params):
        self.params = list(params)
        self._snapshot: tuple[int, list[np.ndarray]] | None = None

    def snapshot(self, step: int) -> None:
        """Keep the parameters as they are after global ``step``."""
        self._snapshot = (step, [p.get_value() for p in self.params])

    def forget(self) -> None:
        self._snapshot = None

    def params_finite(self) -> bool:
        return all(np.isfinite(p.get_value(borrow=True)).all() for p in self.params)

    def fail(self, step: int, loss: float) -> None:
        """Raise the error for a non-finite ``loss`` (NaN when only the parameters are)."""
        if loss == math.inf and self.params_finite():
            # The parameters are fine: the batch holds a row that the model calls impossible.
            raise ValueError(
                f"the loss at step {step:,d} is infinite: a row of the batch has zero probability "
                "under the model, e.g. a label outside its likelihood's support (a Bernoulli label "
                "of 2, a negative count). Check the DataLoader's columns and transform."
            )
        restored = ""
        if self._snapshot is not None:
            at, values = self._snapshot
            for p, value in zip(self.params, values):
                p.set_value(value)
            restored = f" The parameters were restored to their finite values after step {at:,d}."
        raise FloatingPointError(
            f"NaN occurred at step {step:,d} of the optimization.{restored} Try a smaller learning "
            "rate (obj_optimizer=pm.adam(learning_rate=...)), total_grad_norm_constraint=..., or "
            "check the data and the priors."
        )
