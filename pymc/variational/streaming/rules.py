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
"""What a column must hold, and the errors that say which value broke it: whole numbers
in a likelihood's support (:class:`LabelRule`, :func:`check_rule`), and no NaN
(:class:`MissingValuesError`)."""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

__all__ = ["LabelRule", "MissingValuesError", "check_rule"]


class MissingValuesError(ValueError):
    """NaN in a column, which no model can take: ``column`` and ``shard`` say where, so
    that a reader of columns the model does not use (``predict``) can say so instead."""

    def __init__(self, message: str, column: str | None = None, shard: str | None = None):
        super().__init__(message)
        self.column, self.shard = column, shard  # pickled with the error from a worker


@dataclass(frozen=True)
class LabelRule:
    """What a column must hold: whole numbers, between ``low`` and ``high``.

    Parameters
    ----------
    feeds : str
        What the column feeds, for the error message (a likelihood, an integer placeholder).
    low, high : float
        The support of the likelihood; infinite when unbounded.
    """

    feeds: str
    low: float = -math.inf
    high: float = math.inf

    def describe(self) -> str:
        """The rule in words."""
        low = "" if self.low == -math.inf else f"{self.low:g}"
        high = "" if self.high == math.inf else f"{self.high:g}"
        if not low and not high:
            return "whole numbers"
        if not high:
            return f"whole numbers >= {low}"
        return f"whole numbers from {low} to {high}"


def check_rule(
    column: np.ndarray, rule: LabelRule, where: str, first_row: int = 0, of: str = ""
) -> None:
    """Raise a ValueError for the first value of ``column`` that breaks ``rule``.

    ``where`` names what holds the column (``"part-0.parquet: column 'label'"``), and a
    row is numbered ``first_row + r`` followed by ``of`` (``" of the shard"``).
    """
    fraction = column != np.round(column)
    if fraction.any():
        r = int(np.argmax(fraction))
        raise ValueError(
            f"{where} holds non-whole numbers ({column[r].item()!r} at row {first_row + r}{of}), "
            f"which cannot go into {rule.feeds}"
        )
    if (rule.low == -math.inf and rule.high == math.inf) or not len(column):
        return
    outside = (column < rule.low) | (column > rule.high)
    if outside.any():
        r = int(np.argmax(outside))
        raise ValueError(
            f"{where} holds {column[r].item()!r} at row {first_row + r}{of}, outside the "
            f"support of {rule.feeds}, which takes {rule.describe()}"
        )
